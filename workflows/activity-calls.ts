import { proxyActivities, type ActivityFunctionWithOptions, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../activities';

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
