import {
  ApplicationFailure,
  condition,
  isCancellation,
  log,
  metricMeter,
  patched,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { Alert, CutoverAck, Phase, StepName } from '../plan/migration-types';
import { METRICS } from '../plan/metric-names';
import type { Plan } from '../plan/plan-schema';
import { summarized } from './activity-calls';
import { describeFailure } from './failures';
import { cutoverUpdate, operatorDecisionSignal, operatorDecisionUpdate, pauseCdcUpdate, resumeCdcUpdate, STATUS_MEMO_KEY, statusQuery } from './messages';
import type { MigrationState } from './migration-state';
import { compactStatus, currentDetails } from './reporting';
import { DBFERRY_MIGRATION, DBFERRY_PHASE } from './search-attributes';

/** The operator ended the migration (abort); the workflow cleans up and fails with MigrationAborted. */
export class Aborted extends Error {}

// An alert is retried for about a minute; one that still fails is recorded, never fatal.
const alerting = summarized({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '20 seconds', maximumAttempts: 4 },
});

/**
 * The operator gate over a migration's state: what people see (search attributes, memo, the
 * Web UI's current details, alerts) and what they decide (retry, skip, abort, pause, resume,
 * cutover, all as validated Updates). A failed step waits here for a person.
 */
export class OperatorGate {
  #publishedPhase: Phase | undefined;
  /** Alerts go out in the background: a slow or dead receiver never holds the migration up. */
  readonly #deliveries: Promise<void>[] = [];
  /** True while CDC apply is stopped for a pause. */
  cdcHeld = false;

  constructor(
    private readonly plan: Plan,
    readonly state: MigrationState,
    readonly now: () => string,
    /** Takes a table dropped on the source out of the migration (the operator's `skip` of such a pause). */
    private readonly leaveOut?: (table: string) => Promise<unknown>,
  ) {}

  /** Publishes the state: search attributes on a phase change, the memo and the UI's current details. */
  publish(): void {
    const status = this.state.snapshot();
    if (status.phase !== this.#publishedPhase) {
      upsertSearchAttributes([{ key: DBFERRY_PHASE, value: status.phase }, { key: DBFERRY_MIGRATION, value: this.plan.name }]);
      this.#publishedPhase = status.phase;
    }
    upsertMemo({ [STATUS_MEMO_KEY]: compactStatus(status) });
    setCurrentDetails(currentDetails(status));
  }

  // Migrations started before alerts existed replay without them (patched: no new commands).
  #alertsOn(): boolean {
    return (!!this.plan.alerts?.webhook || !!this.plan.aws?.snsTopicArn) && patched('alerts-v1');
  }

  alert(a: Omit<Alert, 'at'>): void {
    if (!this.#alertsOn()) return;
    const full: Alert = { ...a, at: this.now() };
    this.#deliveries.push(
      alerting('sendAlert', `alert: ${full.kind}`, { plan: this.plan, alert: full }).then(
        () => this.state.alertSent(),
        (err) => {
          this.state.alertMissed(full.kind, full.at, describeFailure('preflight', err, full.at).message);
          this.publish();
        },
      ),
    );
  }

  /** Waits for the alerts in flight, then publishes their outcome (missed ones show in status). */
  async alertsDelivered(): Promise<void> {
    if (!this.#alertsOn()) return;
    await Promise.allSettled(this.#deliveries.splice(0));
    this.publish();
  }

  /** The operator's messages. `beginCutover` checks writes have stopped and writes the marker. */
  installHandlers(beginCutover: () => Promise<CutoverAck>): void {
    const { state, plan } = this;
    setHandler(statusQuery, () => state.snapshot());
    setHandler(
      operatorDecisionUpdate,
      (d) => {
        const ack = state.decide(d, this.now());
        this.publish();
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
          const ack = await beginCutover();
          state.cutoverBegun(ack, this.now());
          this.publish();
          return ack;
        } catch (err) {
          // The refusal's own words (writes still arriving, CDC behind) are what the operator needs.
          const f = describeFailure('cdc', err, this.now());
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
        state.pauseCdc(this.now(), reason);
        this.publish();
        // An abort taken meanwhile ends the wait too: the applier then stops for good.
        await condition(() => this.cdcHeld || !state.cdcPauseWanted || state.phase === 'aborted');
        if (state.phase === 'aborted') return `CDC of ${plan.name} stopped: the migration was aborted`;
        return `CDC of ${plan.name} paused: the source keeps its changes until dbferry resume ${plan.name}`;
      },
      { validator: (_: { reason?: string }) => state.validatePause(), description: 'Hold CDC apply; the source keeps the changes' },
    );
    setHandler(
      resumeCdcUpdate,
      () => {
        state.resumeCdc();
        this.publish();
        return `CDC of ${plan.name} resumes from its last applied transaction`;
      },
      { validator: () => state.validateResume(), description: 'Continue CDC apply after a pause' },
    );
    setHandler(operatorDecisionSignal, (d) => {
      if ((!state.pausedStep && !state.abortableRunningStep) || state.hasDecision()) return;
      try {
        state.decide(d, this.now());
        this.publish();
      } catch {
        // An invalid fallback signal is ignored: the Update path is where refusals are reported.
      }
    });
  }

  /**
   * Runs a step until it succeeds, is skipped by the operator, or the operator aborts. A step
   * the plan's step list does not have is passed over (it records nothing).
   */
  async step<T>(name: StepName, steps: readonly StepName[], run: () => Promise<T>): Promise<T | undefined> {
    if (!steps.includes(name)) return undefined;
    const { state, plan } = this;
    let leaveOut: string | undefined;
    // The worker's log says what the migration is doing (the workflow logger writes nothing on replay).
    const where = { migration: plan.name, step: name };
    for (;;) {
      state.stepStarted(name, this.now());
      this.publish();
      log.info(`step ${name} started`, where);
      try {
        // Inside the step: should removing the table fail, the step pauses again with the cause.
        if (leaveOut && this.leaveOut) await this.leaveOut(leaveOut);
        leaveOut = undefined;
        const result = await run();
        state.stepSucceeded(name, this.now());
        this.publish();
        log.info(`step ${name} done`, where);
        return result;
      } catch (err) {
        // A cancelled workflow ends as cancelled, not as a step waiting for a person.
        if (isCancellation(err) || err instanceof Aborted) throw err;
        const failure = describeFailure(name, err, this.now());
        state.stepFailed(failure);
        this.publish();
        metricMeter.createCounter(METRICS.operatorPauses, 'pauses', 'Steps that failed and wait for an operator (retry, skip or abort)').add(1, where);
        log.warn(`step ${name} failed (${failure.type}): waiting for an operator: dbferry retry, skip or abort ${plan.name}`, { ...where, ...(failure.table ? { table: failure.table } : {}), failure: failure.message });
        this.alert({
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
        const decision = state.takeDecision(this.now())!;
        leaveOut = decision.leaveOut;
        this.publish();
        log.info(`operator decided ${decision.action} for step ${name}`, { ...where, decision: decision.action, ...(decision.reason ? { reason: decision.reason } : {}) });
        if (decision.action !== 'abort') {
          this.alert({ kind: 'resumed', step: name, text: `dbferry migration *${plan.name}*: ${decision.action} of step *${name}* by the operator${decision.reason ? ` (${decision.reason})` : ''}` });
        }
        if (decision.action === 'abort') throw new Aborted(decision.reason ?? 'no reason given');
        if (decision.action === 'skip' && !leaveOut) return undefined;
      }
    }
  }
}
