import { formatBytes, formatDuration } from './units';

/**
 * How long a full load will take, estimated before it starts (`dbferry check`) from the rates
 * measured with bench/ (README "Capacity planning"). Both figures come from one worker on a
 * 2-core machine that also runs the source and the target; a user's own rate depends on the
 * cores of their workers and, mostly, on their source's and target's CPU and I/O.
 */
export const MEASURED_RATE = {
  /**
   * Source table bytes (pg_table_size: heap and TOAST) per second of the whole migration: create,
   * load, keys and indexes, validation with checksums. Dataset A (2,163 MB) took 31–40 s in six
   * runs on 2026-12-02 (README "Capacity planning").
   */
  bytesPerSecond: 60e6,
  /** What one more table costs, for tables too small to count by their bytes (bench/many-tables.sh: 50,000 tables in 465–500 s). */
  msPerTable: 10,
  /** Where the figures were measured. */
  where: 'one worker with load.parallel 2 on a 2-core machine that also runs both databases (bench/run.sh, bench/many-tables.sh)',
};

export interface LoadEstimate {
  tables: number;
  /** The source's own estimate of its selected tables' size (statistics, not a count). */
  bytes: string;
  seconds: number;
  /** In words, for `dbferry check`. */
  text: string;
}

/** The estimate for `bytes` in `tables` tables; undefined when the source gave no size. */
export function estimateLoad(selected: { tables: number; estimatedBytes: string } | undefined): LoadEstimate | undefined {
  if (!selected || MEASURED_RATE.bytesPerSecond <= 0) return undefined;
  const bytes = Number(selected.estimatedBytes);
  const seconds = Math.round((bytes / MEASURED_RATE.bytesPerSecond + (selected.tables * MEASURED_RATE.msPerTable) / 1000) * 10) / 10;
  return {
    tables: selected.tables,
    bytes: selected.estimatedBytes,
    seconds,
    text:
      `about ${formatDuration(seconds * 1000)} for ${formatBytes(bytes)} in ${selected.tables} table${selected.tables === 1 ? '' : 's'}, at the rate measured on ` +
      `${MEASURED_RATE.where} (${formatBytes(MEASURED_RATE.bytesPerSecond)}/s, ${MEASURED_RATE.msPerTable} ms a table); ` +
      `your workers' cores and your source's and target's I/O set your own rate (README: Capacity planning)`,
  };
}
