import type { TableModel } from '../../plan/schema-model';

/** A piece of one table: all of it, or a range of its heap pages (a TID range scan, PostgreSQL 14+). */
export interface Chunk {
  table: TableModel;
  /** 0 for a table loaded whole; 1..n for page ranges. */
  index: number;
  /** Total chunks of this table. */
  of: number;
  /** First heap page (inclusive) and last (exclusive; undefined = to the end). */
  fromPage?: number;
  toPage?: number;
}

export interface TableExtent {
  /** Heap pages now (at least what the snapshot sees). */
  pages: number;
  /** Planner estimate; -1 or 0 when never analyzed. */
  reltuples: number;
}

/**
 * Splits tables into page ranges of about `chunkRows` rows so one large table spreads over
 * every load lane. The last range is open-ended, so nothing a snapshot can see lies outside the
 * ranges. Without chunkRows every table stays whole: measured on 2 cores (bench/), a whole
 * table's `COPY t TO` plus TRUNCATE + COPY FREEZE in one transaction beat page ranges, which
 * need `COPY (SELECT … WHERE ctid …)` and lose FREEZE. Chunks pay off with more cores and workers
 * than large tables.
 */
export function planChunks(tables: TableModel[], extents: Map<TableModel, TableExtent>, chunkRows?: number): Chunk[] {
  const out: Chunk[] = [];
  for (const table of tables) {
    const e = extents.get(table);
    if (!chunkRows || !e || table.partitioned || e.pages <= chunkPages(e, chunkRows)) {
      out.push({ table, index: 0, of: 1 });
      continue;
    }
    const pagesPerChunk = chunkPages(e, chunkRows);
    const n = Math.ceil(e.pages / pagesPerChunk);
    for (let i = 0; i < n; i++) {
      out.push({ table, index: i + 1, of: n, fromPage: i * pagesPerChunk, toPage: i === n - 1 ? undefined : (i + 1) * pagesPerChunk });
    }
  }
  return out;
}

function chunkPages(e: TableExtent, chunkRows: number): number {
  const rowsPerPage = e.reltuples > 0 && e.pages > 0 ? e.reltuples / e.pages : 50;
  return Math.max(1, Math.floor(chunkRows / Math.max(rowsPerPage, 1e-9)));
}

/** The WHERE clause of a page-range chunk, or '' for a whole table. */
export function chunkFilter(c: Chunk): string {
  if (c.index === 0) return '';
  const lo = `ctid >= '(${c.fromPage},0)'::tid`;
  return c.toPage === undefined ? ` WHERE ${lo}` : ` WHERE ${lo} AND ctid < '(${c.toPage},0)'::tid`;
}
