import { execFile, spawn, type SpawnOptions } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Runs a command as `user` when we are root (PostgreSQL and MariaDB refuse to run as root),
 * as ourselves otherwise. Rejects with the command's stderr on a non-zero exit.
 */
export async function runAs(user: string | undefined, cmd: string, args: string[], opts: { cwd?: string } = {}) {
  const [file, argv] = user && isRoot() ? ['runuser', ['-u', user, '--', cmd, ...args]] : [cmd, args];
  try {
    return await execFileAsync(file, argv, { cwd: opts.cwd, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr || e.stdout || e.message).trim()}`);
  }
}

export function spawnAs(user: string | undefined, cmd: string, args: string[], opts: SpawnOptions) {
  return user && isRoot() ? spawn('runuser', ['-u', user, '--', cmd, ...args], opts) : spawn(cmd, args, opts);
}

export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
