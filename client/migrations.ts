import { randomUUID } from 'node:crypto';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter, WorkflowIdReusePolicy } from '@temporalio/common';
import type { Plan } from '../plan';
import { DBFERRY_MIGRATION, DBFERRY_PHASE, migrationWorkflowId } from '../workflows/search-attributes';
import type { CdcProgress, CheckResult, CleanupResult, CutoverAck, DecisionAction, MigrationReport, MigrationStatus } from '../plan/migration-types';
import type { checkWorkflow, cleanupWorkflow, migrationWorkflow } from '../workflows';
import {
  ABORTED_FAILURE_TYPE,
  cutoverUpdate,
  operatorDecisionSignal,
  operatorDecisionUpdate,
  pauseCdcUpdate,
  resumeCdcUpdate,
  STATUS_MEMO_KEY,
} from '../workflows/messages';
import { CliError, Exit, type ExitCode } from './exit-codes';
import { cdcProgress } from './render';
import { describeOrUndefined, firstLine, type TemporalOptions } from './temporal';

export interface StartOutcome {
  handle: WorkflowHandle<typeof migrationWorkflow>;
  started: boolean;
  /** Set when a migration of that name already completed: nothing new is started. */
  alreadyCompleted?: boolean;
}

/**
 * Starts the migration, or finds the one already running under that name: the workflow id is
 * `migration-<name>`, so a second start never starts a second migration. A name whose last run
 * failed or was aborted may start again.
 */
export async function startMigration(client: Client, o: TemporalOptions, plan: Plan): Promise<StartOutcome> {
  const workflowId = migrationWorkflowId(plan.name);
  const existing = await describeOrUndefined(client, workflowId);
  const handle = client.workflow.getHandle<typeof migrationWorkflow>(workflowId);
  if (existing?.status.name === 'RUNNING') return { handle, started: false };
  if (existing?.status.name === 'COMPLETED') return { handle, started: false, alreadyCompleted: true };
  try {
    const h = await client.workflow.start<typeof migrationWorkflow>('migrationWorkflow', {
      taskQueue: o.taskQueue,
      workflowId,
      args: [{ plan }],
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      typedSearchAttributes: [
        { key: DBFERRY_MIGRATION, value: plan.name },
        { key: DBFERRY_PHASE, value: 'preflight' },
      ],
      staticSummary: `dbferry ${plan.mode}: ${plan.name} (${plan.source.engine} → ${plan.target.engine})`.slice(0, 190),
      staticDetails: planDetails(plan),
    });
    return { handle: h, started: true };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return { handle, started: false };
    if (/search attribute/i.test(String(err))) {
      throw new CliError(Exit.Failed, `the namespace ${o.namespace} lacks dbferry's search attributes: run dbferry setup-namespace (${firstLine(err)})`);
    }
    throw err;
  }
}

/** Markdown for the Web UI: what this migration does, never a secret (references only). */
function planDetails(plan: Plan): string {
  const sel = plan.tables.mappings ? 'DMS table mappings' : `include ${plan.tables.include.join(', ')}${plan.tables.exclude.length ? `; exclude ${plan.tables.exclude.join(', ')}` : ''}`;
  return [
    `### dbferry migration \`${plan.name}\``,
    `- mode: **${plan.mode}**, runner: ${plan.runner}`,
    `- source: ${plan.source.engine}, URL from \`${plan.source.url.startsWith('env:') || plan.source.url.startsWith('file:') ? plan.source.url : 'inline (no password)'}\``,
    `- target: ${plan.target.engine}, URL from \`${plan.target.url.startsWith('env:') || plan.target.url.startsWith('file:') ? plan.target.url : 'inline (no password)'}\`${plan.target.createDatabase ? ', database created when missing' : ''}`,
    `- tables: ${sel}`,
    `- load: ${plan.mode === 'dump-restore' ? `pg_dump and pg_restore with ${plan.load.parallel} jobs` : `${plan.load.parallel} tables at once`}; validation: counts${plan.validate.checksums ? ' and checksums' : ''}`,
    '',
    'Steer it with `dbferry status|retry|skip|abort ' + plan.name + '`.',
  ].join('\n');
}

export function statusFromDescription(d: WorkflowExecutionDescription): MigrationStatus | undefined {
  return d.memo?.[STATUS_MEMO_KEY] as MigrationStatus | undefined;
}

/**
 * What running activities report in their heartbeats: the migration's own and those of its
 * running load children (the load fans out through child workflows).
 */
export async function liveProgress(client: Client, d: WorkflowExecutionDescription): Promise<unknown[]> {
  const out = heartbeatDetails(d);
  for (const child of d.raw.pendingChildren ?? []) {
    if (!child.workflowId) continue;
    try {
      out.push(...heartbeatDetails(await client.workflow.getHandle(child.workflowId, child.runId ?? undefined).describe()));
    } catch {
      // A child that just finished is not worth failing a status for.
    }
  }
  return out;
}

/** The status with the applier's live per-table counts (the memo has them only at cutover). */
export function withLiveCdc(s: MigrationStatus, cdc: CdcProgress | undefined): MigrationStatus {
  if (!cdc) return s;
  const byName = new Map(cdc.tables.map((t) => [t.table, t]));
  return {
    ...s,
    tables: s.tables.map((t) => {
      const c = byName.get(t.name);
      return c ? { ...t, inserts: c.inserts, updates: c.updates, deletes: c.deletes } : t;
    }),
  };
}

function heartbeatDetails(d: WorkflowExecutionDescription): unknown[] {
  return liveDetails(d.raw.pendingActivities ?? []);
}

/** A pending activity as describe() reports it (the fields dbferry reads). */
export interface PendingActivity {
  activityType?: { name?: string | null } | null;
  state?: number | null;
  attempt?: number | null;
  lastFailure?: { message?: string | null } | null;
  heartbeatDetails?: { payloads?: unknown[] | null } | null;
}

/**
 * What running activities report: their last heartbeat. One that was asked to stop (the load's
 * snapshot holder once the load is done) is no longer live; one waiting to retry after a failed
 * attempt is failing, whatever its last heartbeat said ("caught up" just before the stream failed).
 */
export function liveDetails(activities: readonly PendingActivity[]): unknown[] {
  const out: unknown[] = [];
  for (const a of activities) {
    if (a.state === PENDING_ACTIVITY_CANCEL_REQUESTED) continue;
    const p = a.heartbeatDetails?.payloads?.[0];
    if (!p) continue;
    try {
      const details = defaultPayloadConverter.fromPayload(p as never) as object;
      const retrying = a.state === PENDING_ACTIVITY_SCHEDULED && a.lastFailure?.message ? { attempt: a.attempt ?? 0, error: a.lastFailure.message } : undefined;
      out.push({ activity: a.activityType?.name, ...details, ...(retrying ? { caughtUp: false, retrying } : {}) });
    } catch {
      // Unreadable details are not worth failing a status for.
    }
  }
  return out;
}

/** temporal.api.enums.v1.PendingActivityState: SCHEDULED (waiting for an attempt, a retry included), CANCEL_REQUESTED. */
const PENDING_ACTIVITY_SCHEDULED = 1;
const PENDING_ACTIVITY_CANCEL_REQUESTED = 3;

export async function requireMigration(client: Client, name: string): Promise<WorkflowExecutionDescription> {
  const d = await describeOrUndefined(client, migrationWorkflowId(name));
  if (!d) throw new CliError(Exit.UnknownMigration, `no migration named ${name} (workflow ${migrationWorkflowId(name)} not found)`);
  return d;
}

export type WaitOutcome =
  | { kind: 'completed'; report: MigrationReport }
  | { kind: 'caught-up'; status: MigrationStatus; cdc: CdcProgress }
  | { kind: 'awaiting-operator'; status: MigrationStatus }
  | { kind: 'aborted'; status?: MigrationStatus; message: string }
  | { kind: 'failed'; status?: MigrationStatus; message: string };

export const WAIT_EXIT: Record<WaitOutcome['kind'], ExitCode> = {
  completed: Exit.Ok,
  'caught-up': Exit.Ok,
  'awaiting-operator': Exit.AwaitingOperator,
  aborted: Exit.Aborted,
  failed: Exit.Failed,
};

/**
 * Waits until the migration completes, pauses for an operator, is aborted or fails; with
 * `untilCaughtUp`, also until CDC runs and has caught up with the source.
 */
export async function waitForOutcome(
  client: Client,
  name: string,
  onPhase?: (s: MigrationStatus) => void,
  opts: { untilCaughtUp?: boolean } = {},
): Promise<WaitOutcome> {
  const handle = client.workflow.getHandle<typeof migrationWorkflow>(migrationWorkflowId(name));
  let lastPhase: string | undefined;
  for (;;) {
    const d = await handle.describe();
    const status = statusFromDescription(d);
    if (status && status.phase !== lastPhase) {
      lastPhase = status.phase;
      onPhase?.(status);
    }
    if (d.status.name !== 'RUNNING') break;
    if (status?.phase === 'awaiting-operator') return { kind: 'awaiting-operator', status };
    if (opts.untilCaughtUp && status?.phase === 'cdc' && !status.cdc?.cutover) {
      const cdc = cdcProgress(heartbeatDetails(d));
      if (cdc?.caughtUp) return { kind: 'caught-up', status, cdc };
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  try {
    return { kind: 'completed', report: await handle.result() };
  } catch (err) {
    const d = await handle.describe();
    const status = statusFromDescription(d);
    if (err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure && err.cause.type === ABORTED_FAILURE_TYPE) {
      return { kind: 'aborted', status, message: err.cause.message };
    }
    const message = err instanceof WorkflowFailedError && err.cause ? err.cause.message : firstLine(err);
    return { kind: 'failed', status, message: `${d.status.name.toLowerCase()}: ${message}` };
  }
}

/**
 * Sends the operator's decision as a Workflow Update: accepted (the workflow acts on it) or
 * refused with the validator's reason (exit 5). With no worker answering, the decision goes as a
 * signal and is applied when a worker is back, if still valid.
 */
export async function decide(client: Client, name: string, action: DecisionAction, reason?: string): Promise<string> {
  const { d, handle } = await runningMigration(client, name, action);
  // The step guard: a decision meant for one pause is refused if the migration has moved on to another.
  const decision = { action, reason, step: statusFromDescription(d)?.failure?.step };
  return sendUpdate(action, 30_000, client, () => handle.executeUpdate(operatorDecisionUpdate, { args: [decision], updateId: `${action}-${randomUUID()}` }), async () => {
    await handle.signal(operatorDecisionSignal, decision);
    return `no worker answered within 30 s; ${action} was sent as a signal and applies when a worker is back (if still valid)`;
  });
}

/** The running migration and its handle; a finished one refuses `verb` (exit 5, or 7 when aborted). */
async function runningMigration(client: Client, name: string, verb: string) {
  const d = await requireMigration(client, name);
  if (d.status.name !== 'RUNNING') {
    const phase = statusFromDescription(d)?.phase ?? d.status.name.toLowerCase();
    if (phase === 'aborted') throw new CliError(Exit.Aborted, `migration ${name} was aborted: nothing to ${verb}`);
    throw new CliError(Exit.Refused, `migration ${name} is not running (${phase}): nothing to ${verb}`);
  }
  return { d, handle: client.workflow.getHandle(d.workflowId) };
}

/**
 * Sends an Update with a deadline: a refusal (validator or handler) is exit 5 with its reason
 * and hint; no worker answering is `noWorker`'s to handle (by default exit 1 saying so).
 */
async function sendUpdate<T>(verb: string, deadlineMs: number, client: Client, send: () => Promise<T>, noWorker?: () => Promise<T>): Promise<T> {
  try {
    return await client.connection.withDeadline(Date.now() + deadlineMs, send);
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      const cause = err.cause as (Error & { details?: Array<{ hint?: string }> }) | undefined;
      const hint = cause?.details?.[0]?.hint;
      throw new CliError(Exit.Refused, `${verb} refused: ${cause?.message ?? err.message}${hint ? `\n  hint: ${hint}` : ''}`);
    }
    if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || /deadline/i.test(String(err))) {
      if (noWorker) return noWorker();
      throw new CliError(Exit.Failed, `no worker answered the ${verb} within ${deadlineMs / 1000} s: is a dbferry worker running?`);
    }
    throw err;
  }
}

export async function runCheck(client: Client, o: TemporalOptions, plan: Plan): Promise<CheckResult> {
  const handle = await client.workflow.start<typeof checkWorkflow>('checkWorkflow', {
    taskQueue: o.taskQueue,
    workflowId: `check-${plan.name}-${randomUUID().slice(0, 8)}`,
    args: [{ plan }],
    workflowExecutionTimeout: '10 minutes',
  });
  try {
    return await handle.result();
  } catch (err) {
    const cause = err instanceof WorkflowFailedError ? ((err.cause?.cause as Error | undefined) ?? err.cause) : undefined;
    throw new CliError(Exit.Failed, `check failed: ${cause?.message ?? firstLine(err)}`);
  }
}

export interface ListedMigration {
  name: string;
  phase: string;
  status: string;
  startTime: string;
  closeTime?: string;
}

export async function listMigrations(client: Client): Promise<ListedMigration[]> {
  const out: ListedMigration[] = [];
  for await (const w of client.workflow.list({ query: "WorkflowType = 'migrationWorkflow'" })) {
    out.push({
      name: String(w.typedSearchAttributes.get(DBFERRY_MIGRATION) ?? w.workflowId.replace(/^migration-/, '')),
      phase: String(w.typedSearchAttributes.get(DBFERRY_PHASE) ?? '?'),
      status: w.status.name,
      startTime: w.startTime.toISOString(),
      closeTime: w.closeTime?.toISOString(),
    });
  }
  return out;
}

/**
 * `dbferry cutover`: the Update checks that writes have stopped and writes the marker; refused
 * (exit 5) with the reason otherwise. The check takes a few seconds, more when CDC is behind.
 */
export async function requestCutover(client: Client, name: string): Promise<CutoverAck> {
  const { handle } = await runningMigration(client, name, 'cut over');
  return sendUpdate('cutover', 180_000, client, () => handle.executeUpdate(cutoverUpdate, { updateId: `cutover-${randomUUID()}` }));
}

/**
 * `dbferry cleanup`: drops the slot and dbferry's publication a migration left on the source.
 * Refused while the migration runs (abort drops them itself). The plan comes from the
 * migration's own start event: it holds references only, which the worker resolves.
 */
export async function cleanupMigration(client: Client, o: TemporalOptions, name: string): Promise<CleanupResult> {
  const d = await requireMigration(client, name);
  if (d.status.name === 'RUNNING') {
    throw new CliError(Exit.Refused, `migration ${name} is still running: abort it (which drops its slot and publication) or let it cut over`);
  }
  const handle = client.workflow.getHandle(d.workflowId, d.runId);
  const history = await handle.fetchHistory();
  const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
  const payload = started?.input?.payloads?.[0];
  if (!payload) throw new CliError(Exit.Failed, `cannot read the plan of migration ${name} from its history`);
  const { plan } = defaultPayloadConverter.fromPayload(payload as never) as { plan: Plan };
  const runId = started?.firstExecutionRunId || d.runId;
  const h = await client.workflow.start<typeof cleanupWorkflow>('cleanupWorkflow', {
    taskQueue: o.taskQueue,
    workflowId: `cleanup-${name}-${randomUUID().slice(0, 8)}`,
    args: [{ plan, migration: { name, runId } }],
    // Deleting a DMS task waits for AWS (the activity may take up to 30 minutes).
    workflowExecutionTimeout: '40 minutes',
  });
  try {
    return await h.result();
  } catch (err) {
    const cause = err instanceof WorkflowFailedError ? ((err.cause?.cause as Error | undefined) ?? err.cause) : undefined;
    throw new CliError(Exit.Failed, `cleanup failed: ${cause?.message ?? firstLine(err)}`);
  }
}

/** `dbferry pause|resume`: hold or continue CDC apply (Updates; refused with the reason, exit 5). */
export async function pauseOrResume(client: Client, name: string, action: 'pause' | 'resume', reason?: string): Promise<string> {
  const { handle } = await runningMigration(client, name, action);
  return sendUpdate(action, 30_000, client, () =>
    action === 'pause'
      ? handle.executeUpdate(pauseCdcUpdate, { args: [{ reason }], updateId: `pause-${randomUUID()}` })
      : handle.executeUpdate(resumeCdcUpdate, { updateId: `resume-${randomUUID()}` }),
  );
}
