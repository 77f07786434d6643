/**
 * Whether this Node.js keeps AsyncLocalStorage in async context frames instead of async hooks.
 * Temporal's activity context is an AsyncLocalStorage, so with hooks every promise in an
 * activity pays for one; the CDC applier makes several per change. Measured on a 1M-row backlog
 * (bench/README.md, "CDC on Node.js 22"): the worker's CPU fell from 10.9 s (Node.js 20) to
 * 7.9 s (22) and 5.7 s (22 with frames).
 */
export function asyncContextFrames(nodeVersion: string, flags: readonly string[]): boolean {
  const major = Number(/^v?(\d+)/.exec(nodeVersion)?.[1] ?? 0);
  if (flags.includes('--no-async-context-frame')) return false;
  if (major >= 24) return true;
  return major >= 22 && flags.includes('--experimental-async-context-frame');
}

/** The flags a Node.js process started with: its command line's and NODE_OPTIONS'. */
export function nodeFlags(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  return [...execArgv, ...(nodeOptions ?? '').split(/\s+/).filter(Boolean)];
}

/** The worker's start-up advice when it runs without frames; undefined when it has them. */
export function asyncContextAdvice(nodeVersion: string, execArgv: readonly string[], nodeOptions: string | undefined): string | undefined {
  if (asyncContextFrames(nodeVersion, nodeFlags(execArgv, nodeOptions))) return undefined;
  const fix = /^v?2[23]\./.test(nodeVersion) ? 'set NODE_OPTIONS=--experimental-async-context-frame (the dbferry image does)' : 'run it on Node.js 24, or on 22 with NODE_OPTIONS=--experimental-async-context-frame (the dbferry image does)';
  return `dbferry worker: Node.js ${nodeVersion} tracks async context with hooks, which makes CDC apply changes up to 1.9x slower: ${fix}`;
}
