import {
  ActivityCancellationType,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  patched,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { FailureType } from '../plan/failure-types';
import type { Alert, CleanupResult, MigrationReport, Phase, StepName } from '../plan/migration-types';
import type { Plan } from '../plan/plan-schema';
import { DBFERRY_MIGRATION, DBFERRY_PHASE, DBFERRY_SOURCE, DBFERRY_TARGET } from './search-attributes';
import { describeFailure } from './failures';
import { runFullLoad } from './full-load';
import {
  ABORTED_FAILURE_TYPE,
  cutoverUpdate,
  operatorDecisionSignal,
  operatorDecisionUpdate,
  pauseCdcUpdate,
  resumeCdcUpdate,
  STATUS_MEMO_KEY,
  statusQuery,
} from './messages';
import { MigrationState } from './migration-state';
import { compactReport, compactStatus, currentDetails, leftBehind } from './reporting';
import { activityRetry, cdcRetry } from './retry-policy';
import { summarized } from './activity-calls';

export interface MigrationInput {
  plan: Plan;
}

// Short steps: a connection problem is retried with backoff, then the operator is asked.
const quick = summarized({ startToCloseTimeout: '10 minutes', heartbeatTimeout: '1 minute', retry: activityRetry });
// Long steps heartbeat on a timer, so the start-to-close bound only guards against a lost worker.
const long = summarized({ startToCloseTimeout: '30 days', heartbeatTimeout: '2 minutes', retry: activityRetry });

// The applier runs until cutover; its heartbeat (every 5 s) is what proves it alive, and a
// source or target restart is retried for a while before the operator is asked.
// A pause or abort waits until the applier has really stopped (it learns of the cancellation
// with its next heartbeat), so `dbferry pause` returning means nothing more is applied.
const cdc = summarized({
  startToCloseTimeout: '3650 days',
  heartbeatTimeout: '30 seconds',
  retry: cdcRetry,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

// An alert is retried for about a minute; one that still fails is recorded, never fatal.
const alerting = summarized({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '20 seconds', maximumAttempts: 4 },
});

class Aborted extends Error {}

const STEPS: StepName[] = ['preflight', 'create-database', 'create-tables', 'full-load', 'build-indexes', 'validate'];
/** Mode dump-restore: pg_dump / pg_restore make the tables, keys and indexes and load the rows in one step. */
const DUMP_RESTORE_STEPS: StepName[] = ['preflight', 'create-database', 'dump-restore', 'validate'];
/**
 * With CDC, validation waits for the cutover drain (the source no longer moves then); finalize
 * carries the sequences and removes what CDC held on the source.
 */
const LOAD_AND_CDC_STEPS: StepName[] = ['preflight', 'create-database', 'create-tables', 'full-load', 'build-indexes', 'cdc', 'validate', 'finalize'];
/** Mode cdc: the target was loaded some other way. */
const CDC_STEPS: StepName[] = ['preflight', 'cdc', 'validate', 'finalize'];

function stepsOf(mode: Plan['mode']): StepName[] {
  if (mode === 'dump-restore') return DUMP_RESTORE_STEPS;
  if (mode === 'full-load-and-cdc') return LOAD_AND_CDC_STEPS;
  if (mode === 'cdc') return CDC_STEPS;
  return STEPS;
}

/** One migration: the steps in the order that keeps data safe; a failed step waits for a person. */
export async function migrationWorkflow({ plan }: MigrationInput): Promise<MigrationReport> {
  const now = () => new Date().toISOString();
  const migration = { name: plan.name, runId: workflowInfo().firstExecutionRunId };
  const input = { plan, migration };
  const steps = stepsOf(plan.mode);
  const withCdc = steps.includes('cdc');
  const state = new MigrationState({ name: plan.name, mode: plan.mode, steps, now: now() });
  const report: MigrationReport = { status: state.snapshot() };
  let publishedPhase: Phase | undefined;

  const publish = () => {
    const status = state.snapshot();
    if (status.phase !== publishedPhase) {
      upsertSearchAttributes([{ key: DBFERRY_PHASE, value: status.phase }, { key: DBFERRY_MIGRATION, value: plan.name }]);
      publishedPhase = status.phase;
    }
    upsertMemo({ [STATUS_MEMO_KEY]: compactStatus(status) });
    setCurrentDetails(currentDetails(status));
  };

  // True while CDC apply is stopped for a pause.
  let cdcHeld = false;
  // Alerts go out in the background: a slow or dead receiver never holds the migration up.
  const deliveries: Promise<void>[] = [];
  // Migrations started before alerts existed replay without them (patched: no new commands).
  const alertsOn = () => !!plan.alerts?.webhook && patched('alerts-v1');
  const alert = (a: Omit<Alert, 'at'>) => {
    if (!alertsOn()) return;
    const full: Alert = { ...a, at: now() };
    deliveries.push(
      alerting('sendAlert', `alert: ${full.kind}`, { plan, alert: full }).then(
        () => state.alertSent(),
        (err) => {
          state.alertMissed(full.kind, full.at, describeFailure('preflight', err, full.at).message);
          publish();
        },
      ),
    );
  };
  /** Waits for the alerts in flight, then publishes their outcome (missed ones show in status). */
  const alertsDelivered = async () => {
    if (!alertsOn()) return;
    await Promise.allSettled(deliveries.splice(0));
    publish();
  };

  setHandler(statusQuery, () => state.snapshot());
  setHandler(
    operatorDecisionUpdate,
    (d) => {
      const ack = state.decide(d, now());
      publish();
      return ack;
    },
    {
      validator: (d) => state.validateDecision(d),
      description: 'The operator decision on a paused step: retry, skip (where no data is lost) or abort',
    },
  );
  setHandler(
    cutoverUpdate,
    async () => {
      state.cutoverChecking(true);
      try {
        const ack = await quick('beginCutover', 'cutover: check that writes have stopped, write the marker', input);
        state.cutoverBegun(ack, now());
        publish();
        return ack;
      } catch (err) {
        // The refusal's own words (writes still arriving, CDC behind) are what the operator needs.
        const f = describeFailure('cdc', err, now());
        throw ApplicationFailure.create({ type: f.type, nonRetryable: true, message: f.message, details: f.hint ? [{ hint: f.hint }] : [] });
      } finally {
        state.cutoverChecking(false);
      }
    },
    {
      validator: () => state.validateCutover(),
      description: 'Cut over a CDC migration: check that writes have stopped, drain CDC, validate, carry sequences, clean up the source',
    },
  );
  setHandler(
    pauseCdcUpdate,
    async ({ reason }) => {
      state.pauseCdc(now(), reason);
      publish();
      await condition(() => cdcHeld || !state.cdcPauseWanted);
      return `CDC of ${plan.name} paused: the source keeps its changes until dbferry resume ${plan.name}`;
    },
    { validator: (_: { reason?: string }) => state.validatePause(), description: 'Hold CDC apply; the source keeps the changes' },
  );
  setHandler(
    resumeCdcUpdate,
    () => {
      state.resumeCdc();
      publish();
      return `CDC of ${plan.name} resumes from its last applied transaction`;
    },
    { validator: () => state.validateResume(), description: 'Continue CDC apply after a pause' },
  );
  setHandler(operatorDecisionSignal, (d) => {
    if ((!state.pausedStep && !state.abortableRunningStep) || state.hasDecision()) return;
    try {
      state.decide(d, now());
      publish();
    } catch {
      // An invalid fallback signal is ignored: the Update path is where refusals are reported.
    }
  });

  /** Runs a step until it succeeds, is skipped by the operator, or the operator aborts. */
  async function step<T>(name: StepName, run: () => Promise<T>): Promise<T | undefined> {
    // A step the plan's mode does not have is passed over (it records nothing).
    if (!steps.includes(name)) return undefined;
    for (;;) {
      state.stepStarted(name, now());
      publish();
      try {
        const result = await run();
        state.stepSucceeded(name, now());
        publish();
        return result;
      } catch (err) {
        // A cancelled workflow ends as cancelled, not as a step waiting for a person.
        if (isCancellation(err) || err instanceof Aborted) throw err;
        const failure = describeFailure(name, err, now());
        state.stepFailed(failure);
        publish();
        alert({
          kind: 'paused',
          step: name,
          ...(failure.table ? { table: failure.table } : {}),
          cause: `${failure.type}: ${failure.message}`,
          command: `dbferry retry ${plan.name}`,
          text:
            `:warning: dbferry migration *${plan.name}* is waiting for an operator: step *${name}* failed (${failure.type})` +
            `${failure.table ? ` on ${failure.table}` : ''}: ${failure.message}` +
            `${failure.hint ? `\nhint: ${failure.hint}` : ''}\nthen: \`dbferry retry ${plan.name}\` (or \`dbferry skip ${plan.name}\` / \`dbferry abort ${plan.name}\`)`,
        });
        await condition(() => state.hasDecision());
        const decision = state.takeDecision()!;
        publish();
        if (decision.action !== 'abort') {
          alert({ kind: 'resumed', step: name, text: `dbferry migration *${plan.name}*: ${decision.action} of step *${name}* by the operator${decision.reason ? ` (${decision.reason})` : ''}` });
        }
        if (decision.action === 'abort') throw new Aborted(decision.reason ?? 'no reason given');
        if (decision.action === 'skip') return undefined;
      }
    }
  }

  try {
    await step('preflight', async () => {
      const pre = await quick('preflight', 'preflight: check source and target', input);
      state.setEndpoints(pre.source.description, pre.target.description);
      upsertSearchAttributes([
        { key: DBFERRY_SOURCE, value: pre.source.description },
        { key: DBFERRY_TARGET, value: pre.target.description },
      ]);
      state.setTables(pre.tables.map((t) => t.name));
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
    await step('create-database', () => quick('createDatabase', `create the target database if missing`, input));

    // Mode dump-restore only (its steps list has none of the three that follow it here).
    report.dumpRestore = await step('dump-restore', () => long('dumpRestore', 'pg_dump the source, pg_restore into the target', input));
    if (report.dumpRestore) {
      state.setTables(report.dumpRestore.tables.map((t) => t.table));
      state.recordLoad(report.dumpRestore.tables);
    }

    const created = await step('create-tables', () => long('createTables', 'create schemas, types, sequences and tables on the target', input));
    if (created) state.setTables(created.tables);
    let loadAttempt = 0;
    report.load = await step('full-load', () => runFullLoad(input, ++loadAttempt));
    if (report.load) state.recordLoad(report.load.tables);
    report.build = await step('build-indexes', () => long('buildIndexes', 'build keys, indexes and foreign keys; carry sequences; analyze', input));
    report.cdc = await step('cdc', async () => {
      const prepared = await quick('prepareCdc', `CDC: prepare the source's change stream and the progress row`, input);
      state.cdcPrepared(prepared);
      publish();
      // The applier runs until it has applied the cutover marker, or until the operator aborts.
      // A pause stops it (its progress row is where it resumes); resume starts it again.
      const stopAsked = () => state.hasDecision() || state.cdcPauseWanted;
      for (;;) {
        const scope = new CancellationScope();
        const applying = scope.run(() => cdc('streamChanges', `CDC: apply the source's changes until cutover`, input));
        const outcome = await Promise.race([applying.then((r) => ({ r })), condition(stopAsked).then(() => undefined)]);
        if (outcome) return outcome.r;
        scope.cancel();
        await applying.catch(() => undefined);
        if (!state.hasDecision()) {
          cdcHeld = true;
          alert({ kind: 'paused', step: 'cdc', command: `dbferry resume ${plan.name}`, text: `dbferry migration *${plan.name}*: CDC apply paused by the operator; resume with \`dbferry resume ${plan.name}\`` });
          await condition(() => !state.cdcPauseWanted || state.hasDecision());
          cdcHeld = false;
          if (!state.hasDecision()) {
            alert({ kind: 'resumed', step: 'cdc', text: `dbferry migration *${plan.name}*: CDC apply resumed` });
            continue;
          }
        }
        const decision = state.takeDecision()!;
        publish();
        throw new Aborted(decision.reason ?? 'no reason given');
      }
    });
    if (report.cdc) state.recordCdc(report.cdc.tables);
    report.validation = await step('validate', async () => {
      const v = await long('validate', 'validate: row counts and checksums of every table', input);
      state.recordValidation(v.tables);
      const different = v.tables.filter((t) => !t.equal);
      if (different.length > 0) {
        throw ApplicationFailure.create({
          type: FailureType.ValidationMismatch,
          nonRetryable: true,
          message: `rows differ between source and target in ${different.map((t) => `${t.table} (source ${t.sourceRows} rows, target ${t.targetRows}, checksum ${t.checksum})`).join(', ')}`,
          details: [{ table: different[0]?.table, hint: 'inspect the table, then run dbferry retry to validate again' }],
        });
      }
      return v;
    });
    if (!report.validation) state.markValidationSkipped();
    report.finalize = await step('finalize', () => quick('finalizeCutover', 'cutover: carry sequences, remove what CDC holds on the source', input));
    state.completed(now());
    publish();
    alert({ kind: 'completed', text: `:white_check_mark: dbferry migration *${plan.name}* completed${report.validation ? ': every table validated equal' : ''}` });
    await alertsDelivered();
    report.status = state.snapshot();
    await condition(allHandlersFinished);
    return compactReport(report);
  } catch (err) {
    if (err instanceof Aborted) {
      // What CDC holds on the source keeps its changes until the disk fills: remove it on the way out.
      let cleanup: CleanupResult | undefined;
      if (withCdc) {
        cleanup = await CancellationScope.nonCancellable(() => quick('cleanupSource', 'remove what CDC holds on the source', input)).catch(() => undefined);
      }
      state.aborted(now(), leftBehind(state.snapshot(), plan, cleanup));
      publish();
      alert({ kind: 'aborted', text: `dbferry migration *${plan.name}* was aborted by the operator: ${err.message}` });
      await alertsDelivered();
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
    publish();
    alert({ kind: 'failed', step: failure.step, cause: `${failure.type}: ${failure.message}`, text: `:x: dbferry migration *${plan.name}* failed in ${failure.step}: ${failure.message}` });
    await alertsDelivered();
    throw ApplicationFailure.create({ type: failure.type, nonRetryable: true, message: failure.message });
  }
}
