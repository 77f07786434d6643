import { DefaultLogger, Runtime, type LogEntry, type LogLevel } from '@temporalio/worker';
import { workerIdentity } from '../activities/identity';
import { scrubCredentials } from '../plan/secret-ref';

export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const LOG_LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'] as const;

export interface WorkerTelemetry {
  /** Serve Prometheus text at http://0.0.0.0:<port>/metrics (the SDK's exporter). */
  metricsPort?: number;
  logFormat: LogFormat;
  logLevel: LogLevel;
}

/** Noise every line would carry and nobody reads (the task token is long, and a credential of sorts). */
const DROPPED = new Set(['taskToken', 'sdkComponent', 'isLocal']);

const TEXT_FIRST = ['migration', 'step', 'table', 'attempt'];
const textRank = (k: string) => (TEXT_FIRST.includes(k) ? TEXT_FIRST.indexOf(k) : TEXT_FIRST.length);
const TEXT_HIDDEN = new Set(['namespace', 'taskQueue', 'workflowRunId', 'runId', 'workflowType', 'activityId']);

/**
 * One log line: JSON for a log pipeline (one object per line), or text for a terminal. Secrets
 * are scrubbed from the whole line, as from everything else that leaves a worker.
 */
export function formatLogLine(e: LogEntry, format: LogFormat, worker: string): string {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e.meta ?? {})) {
    if (DROPPED.has(k) || v === undefined) continue;
    fields[k] = v instanceof Error ? { type: v.name, message: v.message } : typeof v === 'bigint' ? v.toString() : v;
  }
  const time = new Date(Number(e.timestampNanos / 1_000_000n)).toISOString();
  // Scrubbed value by value: a pattern run over the whole line could reach across fields (and out of a JSON string).
  if (format === 'json') {
    return JSON.stringify({ time, level: e.level.toLowerCase(), msg: e.message, ...fields, worker }, (_k, v: unknown) =>
      typeof v === 'bigint' ? v.toString() : typeof v === 'string' ? scrubCredentials(v) : v,
    );
  }
  // A terminal reader needs less: the identifiers that only join lines up stay in JSON; the
  // fields an operator filters by come first.
  const kv = Object.entries(fields)
    .filter(([k]) => !TEXT_HIDDEN.has(k))
    .sort(([a], [b]) => textRank(a) - textRank(b))
    .map(([k, v]) => {
      const text = scrubCredentials(typeof v === 'string' ? v : JSON.stringify(v));
      return `${k}=${typeof v === 'string' && /\s/.test(text) ? JSON.stringify(text) : text}`;
    })
    .join(' ');
  return `${time} ${e.level.padEnd(5)} ${scrubCredentials(e.message)}${kv ? ` ${kv}` : ''}`;
}

/**
 * By design, not news: the worker's own queue carries activities only (no workflows), and
 * dbferry has no Nexus services. The SDK says so at every start, the first as a WARN that an
 * operator would chase.
 */
const EXPECTED_SDK_NOTICES = /^No (workflows|Nexus services) registered/;

/**
 * The SDK runtime of a worker process: its logger (the SDK's lines, the workflow logger's and
 * activities' `log`, and Core's own lines forwarded to it) and its Prometheus exporter, which
 * serves the SDK's worker metrics and dbferry's (activities/telemetry.ts) on one port.
 */
export function installWorkerRuntime(t: WorkerTelemetry): void {
  // Every line says which worker wrote it.
  const worker = workerIdentity();
  Runtime.install({
    logger: new DefaultLogger(t.logLevel, (e) => {
      if (EXPECTED_SDK_NOTICES.test(e.message)) return;
      process.stderr.write(formatLogLine(e, t.logFormat, worker) + '\n');
    }),
    telemetryOptions: {
      logging: { filter: { core: t.logLevel === 'TRACE' || t.logLevel === 'DEBUG' ? t.logLevel : 'WARN', other: 'ERROR' }, forward: {} },
      ...(t.metricsPort ? { metrics: { prometheus: { bindAddress: `0.0.0.0:${t.metricsPort}` } } } : {}),
    },
  });
}
