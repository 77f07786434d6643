/**
 * Every exported function of createActivities() is an activity. The workflow calls them by
 * these engine-neutral names; each dispatches to the engine the plan names.
 */
import type { ActivityInput, Alert, LoadTaskInput } from '../plan/migration-types';
import type { Plan } from '../plan/plan-schema';
import { postAlert } from './alerts/webhook';
import { buildIndexesPostgres } from './target/build-indexes';
import { createDatabasePostgres } from './target/create-database';
import { createTablesPostgres } from './target/create-tables';
import { finishLoadPostgres, planLoadPostgres } from './native/load-plan';
import { loadTaskPostgres } from './native/load-task';
import { dumpRestorePostgres } from './postgres/dump-restore';
import { preflightPostgres } from './native/preflight';
import { holdSnapshotPostgres } from './native/snapshot-holder';
import { validatePostgres } from './native/validate';
import { beginCutoverPostgres, cleanupSourcePostgres, finalizeCutoverPostgres } from './native/cutover';
import { prepareCdcPostgres } from './native/prepare-cdc';
import { streamChangesPostgres } from './apply/stream-changes';

export function createActivities() {
  return {
    preflight: (input: ActivityInput & { withTargetSchema?: boolean }) => preflightPostgres(input),
    createDatabase: (input: ActivityInput) => createDatabasePostgres(input),
    createTables: (input: ActivityInput) => createTablesPostgres(input),
    planLoad: (input: ActivityInput) => planLoadPostgres(input),
    holdSnapshot: (input: ActivityInput) => holdSnapshotPostgres(input),
    loadTask: (input: LoadTaskInput) => loadTaskPostgres(input),
    finishLoad: (input: ActivityInput) => finishLoadPostgres(input),
    buildIndexes: (input: ActivityInput) => buildIndexesPostgres(input),
    dumpRestore: (input: ActivityInput) => dumpRestorePostgres(input),
    validate: (input: ActivityInput) => validatePostgres(input),
    prepareCdc: (input: ActivityInput) => prepareCdcPostgres(input),
    streamChanges: (input: ActivityInput) => streamChangesPostgres(input),
    beginCutover: (input: ActivityInput) => beginCutoverPostgres(input),
    finalizeCutover: (input: ActivityInput) => finalizeCutoverPostgres(input),
    cleanupSource: (input: ActivityInput) => cleanupSourcePostgres(input),
    sendAlert: (input: { plan: Plan; alert: Alert }) => postAlert(input.plan, input.alert),
  };
}

export type Activities = ReturnType<typeof createActivities>;
