import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import type { Alert } from '../../plan/migration-types';
import type { Plan } from '../../plan/plan-schema';
import { scrub } from '../scrub';
import { resolveSecret } from '../secrets';

const TIMEOUT_MS = 10_000;

/**
 * Posts an alert to the plan's webhook: JSON with a Slack-compatible `text` and the alert's
 * fields. The URL is a secret (it carries a token): it is resolved here and never appears in a
 * message. A refused or failing delivery is a Transient failure (retried by the caller).
 */
export async function postAlert(plan: Plan, alert: Alert): Promise<void> {
  const ref = plan.alerts?.webhook;
  if (!ref) return;
  const url = await resolveSecret(ref, 'alerts.webhook');
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...alert, migration: plan.name }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw ApplicationFailure.create({
      type: FailureType.Transient,
      message: scrub(`alert webhook (${ref}) did not answer: ${cause}`, [url]),
    });
  }
  // Drain the body: an unread body keeps the connection busy.
  await res.arrayBuffer().catch(() => undefined);
  if (!res.ok) {
    throw ApplicationFailure.create({ type: FailureType.Transient, message: `alert webhook (${ref}) answered HTTP ${res.status}` });
  }
}
