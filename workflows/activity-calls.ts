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
/** Long steps heartbeat on a timer, so the start-to-close bound only guards against a lost worker. */
export const long = summarized({ startToCloseTimeout: '30 days', heartbeatTimeout: '2 minutes', retry: activityRetry });
