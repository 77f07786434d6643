import { cliEnv, dbferry } from './cli';

export interface WaitOptions {
  timeoutMs?: number;
  /** What to add to a timeout's message (e.g. the worker's last output). */
  explain?: () => string;
  /** Prefix of a log line saying how long it took (for the slow files: where the time goes). */
  log?: string;
}

const fileStarted = Date.now();

/** Polls `check` until it holds; fails after the timeout naming what it waited for. */
export async function waitFor(what: string, check: () => Promise<boolean>, opts: WaitOptions = {}): Promise<void> {
  const since = Date.now();
  const deadline = since + (opts.timeoutMs ?? 120_000);
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${opts.explain ? `; the worker said:\n${opts.explain()}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  if (opts.log) console.log(`${opts.log}: ${what} after ${((Date.now() - since) / 1000).toFixed(1)} s (${((Date.now() - fileStarted) / 1000).toFixed(0)} s into the file)`);
}

/** Polls `dbferry status --json` until `done` holds for it; returns that status. */
export async function untilStatus(name: string, done: (s: any) => boolean, env: NodeJS.ProcessEnv = cliEnv('unused'), timeoutMs = 120_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await dbferry(['status', name, '--json'], env);
    const s = r.code === 0 ? JSON.parse(r.stdout) : undefined;
    if (s && done(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${name}: last status ${r.stdout.slice(0, 2000)} ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 500));
  }
}
