import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { freePort, spawnAs, waitFor } from './processes';

/**
 * The Temporal CLI binary: $DBFERRY_TEMPORAL_BIN, `temporal` on PATH, or the one
 * scripts/setup.sh builds into ~/.cache/dbferry/bin.
 */
export function temporalBinary(): string {
  const candidates = [
    process.env.DBFERRY_TEMPORAL_BIN,
    ...(process.env.PATH ?? '').split(delimiter).map((d) => d && join(d, 'temporal')),
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'dbferry', 'bin', 'temporal'),
  ];
  const found = candidates.find((c) => c && existsSync(c));
  if (!found) throw new Error('the Temporal CLI was not found: run scripts/setup.sh, or set DBFERRY_TEMPORAL_BIN');
  return found;
}

export interface DevServerOptions {
  port?: number;
  uiPort?: number;
  /** SQLite file that keeps history across restarts; in-memory when absent. */
  dbFile?: string;
  /** No Web UI (tests that do not need it start faster). */
  headless?: boolean;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
}

/** Arguments for `temporal server start-dev` with dbferry's search attributes registered. */
export function devServerArgs(o: Required<Pick<DevServerOptions, 'port' | 'uiPort'>> & DevServerOptions): string[] {
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(o.port), '--ui-port', String(o.uiPort)];
  if (o.dbFile) args.push('--db-filename', o.dbFile);
  if (o.headless) args.push('--headless');
  args.push('--log-level', o.logLevel ?? 'error');
  for (const sa of SEARCH_ATTRIBUTES) args.push('--search-attribute', `${sa.name}=Keyword`);
  return args;
}

/** `dbferry dev-server`: the Temporal CLI's dev server in the foreground; Ctrl-C stops it. */
export async function runDevServerForeground(o: { port: number; uiPort: number; dbFile?: string }): Promise<number> {
  const args = devServerArgs({ ...o, logLevel: 'warn' });
  console.error(`Temporal dev server on 127.0.0.1:${o.port}, Web UI http://127.0.0.1:${o.uiPort} (search attributes: ${SEARCH_ATTRIBUTES.map((s) => s.name).join(', ')})`);
  const child = spawn(temporalBinary(), args, { stdio: 'inherit' });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 0)));
}

export interface DevServer {
  address: string;
  uiUrl: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts a Temporal dev server in the background and waits until its frontend answers. */
export async function startDevServer(opts: DevServerOptions = {}): Promise<DevServer> {
  const port = opts.port ?? (await freePort());
  const uiPort = opts.uiPort ?? (await freePort());
  const child = spawnAs(undefined, temporalBinary(), devServerArgs({ ...opts, port, uiPort }), {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const address = `127.0.0.1:${port}`;
  let exited = false;
  child.once('exit', () => (exited = true));
  await waitFor(`the Temporal dev server on ${address}`, 60_000, async () => {
    if (exited) throw new Error(`temporal exited: ${stderr.trim()}`);
    const conn = await Connection.connect({ address, connectTimeout: 1000 });
    try {
      await conn.workflowService.getSystemInfo({});
      return true;
    } finally {
      await conn.close();
    }
  });
  return {
    address,
    uiUrl: `http://127.0.0.1:${uiPort}`,
    process: child,
    async stop() {
      if (exited) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await done;
      clearTimeout(t);
    },
  };
}
