import { proxyActivities, type ActivityFunctionWithOptions, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { activityRetry } from './retry-policy';

/**
 * Activities called with a one-line summary each, which the Temporal Web UI shows on the
 * activity: what it does for this migration, in plain words.
 */
export function summarized(options: ActivityOptions) {
  const proxy = proxyActivities<Activities>(options);
  return <K extends keyof Activities>(name: K, summary: string, ...args: Parameters<Activities[K]>): Promise<Awaited<ReturnType<Activities[K]>>> =>
    (proxy[name] as ActivityFunctionWithOptions<(...a: unknown[]) => Promise<unknown>>).executeWithOptions({ ...options, summary }, args) as Promise<
      Awaited<ReturnType<Activities[K]>>
    >;
}

/** Short steps: a connection problem is retried with backoff, then the operator is asked. */
export const quick = summarized({ startToCloseTimeout: '10 minutes', heartbeatTimeout: '1 minute', retry: activityRetry });
/**
 * Long steps heartbeat on a timer (every 5 s, sent at most every 24 s): a worker lost mid-step
 * is noticed within 30 s and the step retried elsewhere; start-to-close only bounds the rest.
 */
export const long = summarized({ startToCloseTimeout: '30 days', heartbeatTimeout: '30 seconds', retry: activityRetry });
