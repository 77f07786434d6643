import { ActivityCancellationType, CancellationScope, condition, isCancellation } from '@temporalio/workflow';
import type { ActivityInput, CdcResult } from '../plan/migration-types';
import { long, quick, summarized } from './activity-calls';
import { Aborted, type OperatorGate } from './operator-gate';
import { cdcRetry } from './retry-policy';

// The applier runs until cutover; its heartbeat (every 5 s) is what proves it alive, and a
// source or target restart is retried for a while before the operator is asked.
// A pause or abort waits until the applier has really stopped (it learns of the cancellation
// with its next heartbeat), so `dbferry pause` returning means nothing more is applied.
const applier = summarized({
  startToCloseTimeout: '3650 days',
  heartbeatTimeout: '30 seconds',
  retry: cdcRetry,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

/**
 * The cdc step: prepare the source's change stream and the progress row, then apply changes
 * until the applier has applied the cutover marker, or until the operator aborts. A pause
 * stops the applier (its progress row is where it resumes); resume starts it again.
 */
export async function runCdc(input: ActivityInput, gate: OperatorGate): Promise<CdcResult> {
  const { state } = gate;
  const name = input.plan.name;
  // With a managed service (aws runner, mode cdc) preparing may wait for its resources to be made.
  const prepare = input.plan.runner === 'aws' ? long : quick;
  const prepared = await prepare('prepareCdc', `CDC: prepare the source's change stream and the progress row`, input);
  state.cdcPrepared(prepared);
  gate.publish();
  const stopAsked = () => state.hasDecision() || state.cdcPauseWanted;
  for (;;) {
    const scope = new CancellationScope();
    const applying = scope.run(() => applier('streamChanges', `CDC: apply the source's changes until cutover`, input));
    let outcome: { r: CdcResult } | undefined;
    try {
      outcome = await Promise.race([applying.then((r) => ({ r })), condition(stopAsked).then(() => undefined)]);
    } catch (err) {
      // Cancelled from outside: the source is cleaned up next, so wait until the applier has stopped.
      if (isCancellation(err)) await applying.catch(() => undefined);
      throw err;
    }
    if (outcome) return outcome.r;
    scope.cancel();
    await applying.catch(() => undefined);
    if (!state.hasDecision()) {
      gate.cdcHeld = true;
      gate.alert({ kind: 'paused', step: 'cdc', command: `dbferry resume ${name}`, text: `dbferry migration *${name}*: CDC apply paused by the operator; resume with \`dbferry resume ${name}\`` });
      await condition(() => !state.cdcPauseWanted || state.hasDecision());
      gate.cdcHeld = false;
      if (!state.hasDecision()) {
        gate.alert({ kind: 'resumed', step: 'cdc', text: `dbferry migration *${name}*: CDC apply resumed` });
        continue;
      }
    }
    const decision = state.takeDecision(gate.now())!;
    gate.publish();
    throw new Aborted(decision.reason ?? 'no reason given');
  }
}
