import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { requiredEnv } from './databases';

const ROOT = join(__dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'dbferry');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Environment for a CLI or worker process talking to the test's Temporal server. */
export function cliEnv(taskQueue: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    TEMPORAL_ADDRESS: requiredEnv('DBFERRY_TEST_TEMPORAL_ADDRESS'),
    TEMPORAL_NAMESPACE: 'default',
    DBFERRY_TASK_QUEUE: taskQueue,
    ...extra,
  };
}

/** Runs `dbferry <args>` as a user would and collects its output. */
export function dbferry(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> & { child: ChildProcess } {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const p = new Promise<CliResult>((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
  return Object.assign(p, { child });
}

export interface WorkerProcess {
  child: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** A `dbferry worker` process; only it holds the database URLs (the secrets). */
export async function startWorker(env: NodeJS.ProcessEnv): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [BIN, 'worker'], { env: { ...env, DBFERRY_LOG_LEVEL: 'INFO' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 60_000;
  while (!/polling task queue/.test(out)) {
    if (child.exitCode !== null) throw new Error(`worker exited: ${out}`);
    if (Date.now() > deadline) throw new Error(`worker did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    output: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await done;
    },
  };
}

export function writePlan(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'dbferry-plan-'));
  const file = join(dir, 'plan.yaml');
  writeFileSync(file, yaml);
  return file;
}

export async function temporalClient(): Promise<{ client: Client; close: () => Promise<void> }> {
  const connection = await Connection.connect({ address: requiredEnv('DBFERRY_TEST_TEMPORAL_ADDRESS') });
  return { client: new Client({ connection }), close: () => connection.close() };
}

/** Waits until `dbferry status` says the migration's CDC has caught up; fails with the worker's last words. */
export async function untilCaughtUp(name: string, env: NodeJS.ProcessEnv, worker?: WorkerProcess, ms = 180_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const status = JSON.parse((await dbferry(['status', name, '--json'], env)).stdout || '{}');
    if (status.lag?.caughtUp === true) return;
    if (Date.now() > deadline) throw new Error(`CDC of ${name} did not catch up (phase ${status.phase}): ${worker?.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
