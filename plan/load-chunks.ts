import { qualifiedKey, type TableModel } from './schema-model';
import { quoteIdent, quoteLiteral } from './sql-names';

/**
 * Which rows of a table a load unit copies: all of them, a range of primary-key values (lower
 * bound inclusive, upper exclusive, either open), or a range of heap pages where the table has
 * no primary key. The first and last ranges are open-ended, so the ranges cover every row any
 * snapshot can see, whenever the boundaries were drawn.
 */
export type ChunkRange =
  | { kind: 'whole' }
  | { kind: 'keys'; from?: string[]; to?: string[] }
  | { kind: 'pages'; from: number; to?: number }
  /** Validation only: the table as a query reads it, with its partitions' or children's rows. */
  | { kind: 'tree' };

/** One piece of one table, loaded and recorded in the ledger in one target transaction. */
export interface LoadUnit {
  /** qualifiedKey of the table. */
  table: string;
  /** 0 for a table loaded whole; 1..of for its chunks (the ledger's `chunk`). */
  chunk: number;
  of: number;
  range: ChunkRange;
  estBytes: number;
}

/**
 * What one loader activity does: its units commit together (with their ledger rows) or not at
 * all, so a task is either done or not started, never half done.
 */
export interface LoadTask {
  id: number;
  units: LoadUnit[];
  estBytes: number;
}

export interface TableExtent {
  /** Heap pages now (at least what the snapshot sees). */
  pages: number;
  /** Planner estimate; -1 or 0 when never analyzed. */
  reltuples: number;
  bytes: number;
}

/**
 * How many chunks of about `chunkRows` rows a table gets; 1 keeps it whole. Without chunkRows
 * every table stays whole: measured on 2 cores (bench/), a whole table's `COPY t TO` plus
 * TRUNCATE + COPY FREEZE in one transaction beat ranges, which need `COPY (SELECT … WHERE …)`
 * and lose FREEZE. Chunks pay off with more cores and workers than large tables.
 */
export function chunkCount(table: TableModel, extent: TableExtent | undefined, chunkRows?: number): number {
  if (!chunkRows || !extent || table.partitioned || extent.reltuples <= chunkRows * 1.5) return 1;
  return Math.ceil(extent.reltuples / chunkRows);
}

/** Contiguous page ranges of about the same number of rows, the last one open-ended. */
export function pageChunks(table: TableModel, extent: TableExtent, n: number): LoadUnit[] {
  const pagesPerChunk = Math.max(1, Math.ceil(extent.pages / n));
  const count = Math.max(1, Math.ceil(extent.pages / pagesPerChunk));
  if (count === 1) return [wholeUnit(table, extent)];
  return Array.from({ length: count }, (_, i) => ({
    table: qualifiedKey(table),
    chunk: i + 1,
    of: count,
    range: { kind: 'pages' as const, from: i * pagesPerChunk, ...(i === count - 1 ? {} : { to: (i + 1) * pagesPerChunk }) },
    estBytes: Math.round(extent.bytes / count),
  }));
}

/**
 * Key ranges whose boundaries are the n-quantiles of a sorted sample of the key (each key a
 * tuple of the columns' text forms): skew in the key's distribution is followed, not averaged.
 */
export function keyChunks(table: TableModel, extent: TableExtent, sortedSample: string[][], n: number): LoadUnit[] {
  const bounds: string[][] = [];
  for (let i = 1; i < n; i++) {
    const b = sortedSample[Math.floor((i * sortedSample.length) / n)];
    if (b && (bounds.length === 0 || !sameKey(bounds[bounds.length - 1]!, b))) bounds.push(b);
  }
  if (bounds.length === 0) return [wholeUnit(table, extent)];
  const count = bounds.length + 1;
  return Array.from({ length: count }, (_, i) => ({
    table: qualifiedKey(table),
    chunk: i + 1,
    of: count,
    range: { kind: 'keys' as const, ...(i > 0 ? { from: bounds[i - 1] } : {}), ...(i < bounds.length ? { to: bounds[i] } : {}) },
    estBytes: Math.round(extent.bytes / count),
  }));
}

export function wholeUnit(table: TableModel, extent?: TableExtent): LoadUnit {
  return { table: qualifiedKey(table), chunk: 0, of: 1, range: { kind: 'whole' }, estBytes: extent?.bytes ?? Number(table.estimatedBytes) };
}

function sameKey(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Groups units into tasks, largest first so the long ones start early and the lanes finish
 * together. A chunk or a large table is a task of its own; small tables share tasks (up to
 * `maxBytes` or `maxUnits`), so thousands of them cost a few activities, not thousands.
 */
export function groupTasks(units: LoadUnit[], opts: { maxBytes: number; maxUnits: number }): LoadTask[] {
  const sorted = [...units].sort((a, b) => b.estBytes - a.estBytes || a.table.localeCompare(b.table) || a.chunk - b.chunk);
  const tasks: LoadTask[] = [];
  let open: LoadTask | undefined;
  for (const u of sorted) {
    if (u.chunk > 0 || u.estBytes >= opts.maxBytes) {
      tasks.push({ id: tasks.length, units: [u], estBytes: u.estBytes });
      continue;
    }
    if (!open || open.units.length >= opts.maxUnits || open.estBytes + u.estBytes > opts.maxBytes) {
      open = { id: tasks.length, units: [], estBytes: 0 };
      tasks.push(open);
    }
    open.units.push(u);
    open.estBytes += u.estBytes;
  }
  return tasks;
}

/** The WHERE clause that selects a unit's rows from its table, or '' for a whole table. */
export function chunkFilter(table: TableModel, range: ChunkRange): string {
  switch (range.kind) {
    case 'whole':
    case 'tree':
      return '';
    case 'pages': {
      const lo = `ctid >= '(${range.from},0)'::tid`;
      return range.to === undefined ? ` WHERE ${lo}` : ` WHERE ${lo} AND ctid < '(${range.to},0)'::tid`;
    }
    case 'keys': {
      const cols = table.primaryKey?.columns ?? [];
      const types = cols.map((c) => table.columns.find((col) => col.name === c)?.type ?? 'text');
      const tuple = (values: string[]) => {
        const lits = values.map((v, i) => `${quoteLiteral(v)}::${types[i]}`);
        return lits.length === 1 ? lits[0]! : `(${lits.join(', ')})`;
      };
      const key = cols.length === 1 ? quoteIdent(cols[0]!) : `(${cols.map(quoteIdent).join(', ')})`;
      const parts = [
        ...(range.from ? [`${key} >= ${tuple(range.from)}`] : []),
        ...(range.to ? [`${key} < ${tuple(range.to)}`] : []),
      ];
      return parts.length === 0 ? '' : ` WHERE ${parts.join(' AND ')}`;
    }
  }
}

/** How a unit is named in progress and errors: `s.t` or `s.t #3/12`. */
export function unitLabel(u: Pick<LoadUnit, 'table' | 'chunk' | 'of'>): string {
  return u.chunk === 0 ? u.table : `${u.table} #${u.chunk}/${u.of}`;
}
