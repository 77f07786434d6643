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

/** Sends a heartbeat now (the SDK throttles them), when running inside an activity. */
export function heartbeatNow(details: unknown): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    // Outside an activity: nothing to tell.
  }
}
