import { allHandlersFinished, ApplicationFailure, CancellationScope, condition, isCancellation, patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { FailureType } from '../plan/failure-types';
import type { CleanupResult, MigrationReport } from '../plan/migration-types';
import type { Plan } from '../plan/plan-schema';
import { long, quick } from './activity-calls';
import { runCdc } from './cdc';
import { describeFailure } from './failures';
import { runFullLoad } from './full-load';
import { runManagedLoad } from './managed-load';
import { ABORTED_FAILURE_TYPE } from './messages';
import { MigrationState } from './migration-state';
import { Aborted, OperatorGate } from './operator-gate';
import { compactReport, compactStatus, leftBehind } from './reporting';
import { DBFERRY_SOURCE, DBFERRY_TARGET } from './search-attributes';
import { stepsOf } from './steps';

/** Differing tables a validation failure's message names (the rest are counted). */
const MISMATCHES_NAMED = 20;

export interface MigrationInput {
  plan: Plan;
}

/** One migration: the steps in the order that keeps data safe; a failed step waits for a person. */
export async function migrationWorkflow({ plan }: MigrationInput): Promise<MigrationReport> {
  const now = () => new Date().toISOString();
  const migration = { name: plan.name, runId: workflowInfo().firstExecutionRunId };
  const input = { plan, migration };
  const steps = stepsOf(plan);
  const state = new MigrationState({ name: plan.name, mode: plan.mode, steps, now: now() });
  const gate = new OperatorGate(plan, state, now, (table) =>
    quick('leaveOutTable', `take ${table} out of the migration (dropped on the source)`, { ...input, table }),
  );
  const step = <T>(name: Parameters<typeof gate.step>[0], run: () => Promise<T>) => gate.step(name, steps, run);
  const report: MigrationReport = { status: state.snapshot() };
  gate.installHandlers(() => quick('beginCutover', 'cutover: check that writes have stopped, write the marker', input));

  try {
    await step('preflight', async () => {
      const pre = await quick('preflight', 'preflight: check source and target', input);
      state.setEndpoints(pre.source.description, pre.target.description);
      upsertSearchAttributes([
        { key: DBFERRY_SOURCE, value: pre.source.description },
        { key: DBFERRY_TARGET, value: pre.target.description },
      ]);
      state.setTables(pre.tables.map((t) => t.name), pre.selected?.tables);
      const blocking = pre.findings.filter((f) => f.severity === 'blocking');
      if (blocking.length > 0) {
        throw ApplicationFailure.create({
          type: FailureType.PreflightBlocked,
          nonRetryable: true,
          message: blocking.map((f) => f.message).join('; '),
          details: [{ table: blocking[0]?.table, hint: 'fix the findings and run dbferry retry, or accept them with dbferry skip' }],
        });
      }
      return pre;
    });
    // Creating an RDS instance takes a while (the activity heartbeats while it waits).
    await step('create-database', () =>
      plan.aws?.rds
        ? long('createDatabase', `adopt or create RDS instance ${plan.aws.rds.instanceId}, then the target database if missing`, input)
        : quick('createDatabase', `create the target database if missing`, input),
    );

    report.dumpRestore = await step('dump-restore', () => long('dumpRestore', 'pg_dump the source, pg_restore into the target', input));
    if (report.dumpRestore) {
      state.setTables(report.dumpRestore.tables.map((t) => t.table), report.dumpRestore.totals?.tables);
      state.recordLoad(report.dumpRestore.tables, report.dumpRestore.totals);
    }

    const created = await step('create-tables', () => long('createTables', 'create schemas, types, sequences and tables on the target', input));
    if (created) state.setTables(created.tables, created.tableCount);
    let loadAttempt = 0;
    report.load = await step('full-load', () => (plan.runner === 'aws' ? runManagedLoad(input) : runFullLoad(input, ++loadAttempt)));
    if (report.load) state.recordLoad(report.load.tables, report.load.totals);
    report.build = await step('build-indexes', () => long('buildIndexes', 'build keys, indexes and foreign keys; carry sequences; analyze', input));

    report.cdc = await step('cdc', () => runCdc(input, gate));
    if (report.cdc) state.recordCdc(report.cdc.tables);

    report.validation = await step('validate', async () => {
      const v = await long('validate', 'validate: row counts and checksums of every table', input);
      state.recordValidation(v.tables, v.totals);
      const different = v.tables.filter((t) => !t.equal);
      if (different.length > 0) {
        // The message names a few; every table's result is in _dbferry.table_validations.
        const more = (v.totals?.different ?? different.length) - Math.min(different.length, MISMATCHES_NAMED);
        throw ApplicationFailure.create({
          type: FailureType.ValidationMismatch,
          nonRetryable: true,
          message: `rows differ between source and target in ${different
            .slice(0, MISMATCHES_NAMED)
            .map(
              (t) =>
                `${t.table} (source ${t.sourceRows} rows, target ${t.targetRows}, checksum ${t.checksum}` +
                `${t.withDescendants ? `; as queried, with its partitions or children: source ${t.withDescendants.sourceRows} rows, target ${t.withDescendants.targetRows}, checksum ${t.withDescendants.checksum}` : ''}` +
                `${(t.references ?? []).filter((r) => r.wrong !== '0').map((r) => `; ${r.wrong} rows whose ${r.column} does not point at the parent their natural key names`).join('')}` +
                `${(t.computed ?? []).filter((x) => x.wrong !== '0').map((x) => `; ${x.wrong} rows whose ${x.column} is not what its mapping expression gives`).join('')})`,
            )
            .join(', ')}${more > 0 ? `, and ${more} more tables (every table's result: SELECT * FROM _dbferry.table_validations WHERE NOT equal, on the target)` : ''}`,
          details: [{ table: different[0]?.table, hint: 'inspect the table, then run dbferry retry to validate again' }],
        });
      }
      return v;
    });
    if (!report.validation) state.markValidationSkipped();
    report.finalize = await step('finalize', () =>
      plan.runner === 'aws'
        ? long('finalizeCutover', 'finalize: stop the DMS task, carry sequences (and delete what the migration made in AWS when aws.cleanup)', input)
        : quick('finalizeCutover', 'cutover: carry sequences, remove what CDC holds on the source', input),
    );

    state.completed(now());
    gate.publish();
    gate.alert({ kind: 'completed', text: `:white_check_mark: dbferry migration *${plan.name}* completed${report.validation ? ': every table validated equal' : ''}` });
    await gate.alertsDelivered();
    report.status = state.snapshot();
    await condition(allHandlersFinished);
    return compactReport(report);
  } catch (err) {
    // What CDC holds on the source keeps its changes until the disk fills: remove it on the way
    // out. A managed service's task (aws runner) is stopped, whatever the mode.
    const cleanUp = async (): Promise<CleanupResult | undefined> =>
      steps.includes('cdc') || plan.runner === 'aws'
        ? CancellationScope.nonCancellable(() => quick('cleanupSource', 'remove what CDC holds on the source', input)).catch(() => undefined)
        : undefined;
    // Cancelled from outside (the Web UI's Cancel, `temporal workflow cancel`): an abort by other
    // means. It ends as cancelled, after the same cleanup (older runs replay without it).
    if (isCancellation(err) && patched('cancel-cleans-up-v1')) {
      await CancellationScope.nonCancellable(async () => {
        state.aborted(now(), leftBehind(state.snapshot(), plan, await cleanUp()));
        gate.publish();
        gate.alert({ kind: 'aborted', text: `dbferry migration *${plan.name}* was cancelled in Temporal` });
        await gate.alertsDelivered();
      });
      throw err;
    }
    if (err instanceof Aborted) {
      state.aborted(now(), leftBehind(state.snapshot(), plan, await cleanUp()));
      gate.publish();
      gate.alert({ kind: 'aborted', text: `dbferry migration *${plan.name}* was aborted by the operator: ${err.message}` });
      await gate.alertsDelivered();
      await condition(allHandlersFinished);
      throw ApplicationFailure.create({
        type: ABORTED_FAILURE_TYPE,
        nonRetryable: true,
        message: `migration ${plan.name} aborted by the operator: ${err.message}`,
        details: [compactStatus(state.snapshot())],
      });
    }
    const failure = describeFailure(state.snapshot().failure?.step ?? 'preflight', err, now());
    state.failed(now(), failure);
    gate.publish();
    gate.alert({ kind: 'failed', step: failure.step, cause: `${failure.type}: ${failure.message}`, text: `:x: dbferry migration *${plan.name}* failed in ${failure.step}: ${failure.message}` });
    await gate.alertsDelivered();
    throw ApplicationFailure.create({ type: failure.type, nonRetryable: true, message: failure.message });
  }
}
