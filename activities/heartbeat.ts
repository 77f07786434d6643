import { Context } from '@temporalio/activity';

/**
 * Heartbeats on a timer while `fn` runs, so a long statement (a COPY, a CREATE INDEX) never
 * looks like a lost worker, and the details show live progress in `dbferry status` and the UI.
 * Outside an activity (tests calling the function directly) it just runs `fn`.
 */
export async function withHeartbeat<T>(details: () => unknown, fn: (signal?: AbortSignal) => Promise<T>, everyMs = 5_000): Promise<T> {
  let ctx: Context | undefined;
  try {
    ctx = Context.current();
  } catch {
    return fn();
  }
  ctx.heartbeat(details());
  const timer = setInterval(() => ctx!.heartbeat(details()), everyMs);
  try {
    return await fn(ctx.cancellationSignal);
  } finally {
    clearInterval(timer);
  }
}

/** Runs `worker` over `items` with at most `parallel` at once; the first failure stops new work. */
export async function inParallel<T>(items: T[], parallel: number, worker: (item: T, lane: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const lane = async (id: number) => {
    while (failed === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await worker(item, id);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, items.length)) }, (_, i) => lane(i)));
  if (failed !== undefined) throw failed;
}
