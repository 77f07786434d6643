import { Context, log } from '@temporalio/activity';
import type { MetricMeter } from '@temporalio/common';
import { METRICS } from '../plan/metric-names';

/**
 * dbferry's metrics and log lines from activities, through the SDK: the runtime exports the
 * metrics (Prometheus on `dbferry worker --metrics-port`) and writes the lines with the
 * worker's logger. The worker's activity interceptor adds the migration and step to both
 * (worker/activity-telemetry.ts). Outside an activity (a test calling a function directly)
 * there is nothing to report to, and nothing is.
 */
function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

const meter = (): MetricMeter | undefined => activityContext()?.metricMeter;
const inActivity = (): boolean => activityContext() !== undefined;

/**
 * Distinct `table` label values one worker gives its metrics. Every value is a time series per
 * metric for the life of the process, in the worker and in Prometheus: a schema of 50,000
 * tables would be 200,000 series. The first tables a worker reports keep their names; the
 * rest are summed under OTHER_TABLES (their names are in the logs and the migration's status).
 */
export const TABLE_LABELS = 1_000;
export const OTHER_TABLES = '(other tables)';
const labelled = new Set<string>();

/** The `table` label for a table: its name, or OTHER_TABLES once TABLE_LABELS tables have one. */
export function tableLabel(table: string): string {
  if (labelled.has(table)) return table;
  if (labelled.size >= TABLE_LABELS) return OTHER_TABLES;
  labelled.add(table);
  return table;
}

/** Metrics never fail the work they describe (the SDK throws on a negative gauge, for one). */
function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // A lost sample; the next one reports again.
  }
}

/** One unit (a table or a chunk of one) copied by the full load. */
export function unitLoaded(u: { table: string; label: string; rows: number; bytes: number; ms: number }): void {
  const m = meter();
  safely(() => {
    m?.createCounter(METRICS.rowsLoaded, 'rows', 'Rows copied into the target by the full load (a load task that is retried copies its rows again)').add(u.rows, { table: tableLabel(u.table) });
    m?.createCounter(METRICS.bytesLoaded, 'bytes', 'Bytes of COPY data read from the source by the full load').add(u.bytes, { table: tableLabel(u.table) });
  });
  if (!inActivity()) return;
  const seconds = u.ms / 1000;
  log.info(`copied ${u.label}: ${u.rows} rows in ${seconds.toFixed(1)} s`, {
    table: u.table,
    rows: u.rows,
    bytes: u.bytes,
    seconds: Number(seconds.toFixed(3)),
    rowsPerSecond: seconds > 0 ? Math.round(u.rows / seconds) : u.rows,
  });
}

/** Pipelined load: loaded tables' keys and indexes built while other tables copy (one line a task: it may hold 100 small tables). */
export function tableKeysBuilt(tables: string[], ms: number): void {
  const named = tables.length > 10 ? `${tables.slice(0, 10).join(', ')} and ${tables.length - 10} more tables` : tables.join(', ');
  if (inActivity()) log.info(`built the keys and indexes of ${named} in ${(ms / 1000).toFixed(1)} s`, { tables: tables.length, seconds: ms / 1000 });
}

/** Pipelined load: building a table's keys failed or was cut short; the keys-and-indexes step builds them and reports. */
export function tableKeysDeferred(table: string, doing: string, err: unknown): void {
  if (inActivity()) log.warn(`${table}: ${doing} failed while other tables load (${err instanceof Error ? err.message : String(err)}); the keys-and-indexes step builds it`, { table });
}

/** A load task (a group of units) committed. */
export function loadTaskDone(task: number, units: number, rows: bigint, alreadyLoaded: boolean): void {
  // A retry that finds its task committed is not a second task done.
  if (!alreadyLoaded) safely(() => meter()?.createCounter(METRICS.loadTasksDone, 'tasks', 'Load tasks committed (a task loads one or more tables or chunks)').add(1));
  if (inActivity()) log.info(alreadyLoaded ? `load task ${task} was already loaded (a retry)` : `load task ${task} done: ${units} units, ${rows} rows`, { task, units, rows: rows.toString() });
}

export interface AppliedCounts {
  table: string;
  inserts: number;
  updates: number;
  deletes: number;
  truncates: number;
}

/** The changes a CDC batch applied, by table and kind. */
export function cdcApplied(counts: Iterable<AppliedCounts>): void {
  const m = meter();
  if (!m) return;
  safely(() => {
    const c = m.createCounter(METRICS.cdcChangesApplied, 'changes', 'Source changes applied to the target by CDC, by table and kind');
    for (const s of counts) {
      for (const kind of ['inserts', 'updates', 'deletes', 'truncates'] as const) {
        if (s[kind] > 0) c.add(s[kind], { table: tableLabel(s.table), kind: kind.slice(0, -1) });
      }
    }
  });
}

/** How far CDC is behind, and what the source keeps for it (slot WAL, binlog). */
export function cdcState(lagSeconds: number, retainedBytes?: bigint | number): void {
  const m = meter();
  safely(() => {
    m?.createGauge(METRICS.cdcLagSeconds, 'float', 's', 'Seconds the oldest change not yet applied to the target has waited').set(Math.max(0, lagSeconds));
    if (retainedBytes !== undefined) {
      m?.createGauge(METRICS.sourceRetainedBytes, 'int', 'bytes', 'Source log (PostgreSQL WAL of the slot, MySQL binlog) kept for this migration').set(Math.max(0, Number(retainedBytes)));
    }
  });
}

/**
 * CDC stopped on this worker (cutover, pause, abort, or the activity moved elsewhere): its
 * gauges go to 0, so a stale lag does not keep an alert firing; the worker that follows on sets its own.
 */
export function cdcStopped(): void {
  cdcState(0, 0);
}

/** One table's validation result. */
export function tableValidated(table: string, equal: boolean): void {
  safely(() => meter()?.createCounter(METRICS.tablesValidated, 'tables', 'Tables validated, by result (equal or different)').add(1, { table: tableLabel(table), result: equal ? 'equal' : 'different' }));
  if (!inActivity()) return;
  if (equal) log.info(`validated ${table}: equal`, { table, result: 'equal' });
  else log.warn(`validated ${table}: DIFFERENT`, { table, result: 'different' });
}
