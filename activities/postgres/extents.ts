import type { Client } from 'pg';
import type { TableExtent } from '../../plan/load-chunks';
import type { TableModel } from '../../plan/schema-model';
import { qualifiedTable, quoteIdent } from '../../plan/sql-names';

/** Sampled heap pages per chunk when drawing key-range boundaries. */
const SAMPLE_PAGES_PER_CHUNK = 30;

/** Heap size and row estimate of each table from the source catalog. */
export async function tableExtents(c: Client, tables: TableModel[]): Promise<Map<TableModel, TableExtent>> {
  const r = await c.query<{ i: string; pages: string; reltuples: number; bytes: string }>(
    `SELECT i::text, (pg_relation_size(c.oid) / current_setting('block_size')::int)::text AS pages, c.reltuples,
            pg_total_relation_size(c.oid)::text AS bytes
       FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(s, t, i)
       JOIN pg_namespace n ON n.nspname = x.s JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = x.t`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return new Map(
    r.rows.map((row) => [tables[Number(row.i) - 1]!, { pages: Number(row.pages), reltuples: Number(row.reltuples), bytes: Number(row.bytes) }]),
  );
}

/**
 * Boundaries for key ranges, as a sorted list of keys (each a tuple of the columns' text forms)
 * whose n-quantiles become the boundaries. A single integer key (serial, identity: the common
 * case) is cut evenly between its minimum and maximum, read from its index. Any other key is
 * sampled: TABLESAMPLE SYSTEM reads whole pages, so enough pages (about SAMPLE_PAGES_PER_CHUNK a
 * chunk) are read that keys clustered on a page do not skew the quantiles.
 */
export async function sampleKeys(c: Client, t: TableModel, extent: TableExtent, n: number): Promise<string[][]> {
  const keyCols = t.primaryKey!.columns!;
  const name = qualifiedTable(t.schema, t.name);
  const type = t.columns.find((col) => col.name === keyCols[0])?.type;
  if (keyCols.length === 1 && (type === 'bigint' || type === 'integer' || type === 'smallint')) {
    const col = quoteIdent(keyCols[0]!);
    const r = await c.query<{ lo: string | null; hi: string | null }>(`SELECT min(${col})::text AS lo, max(${col})::text AS hi FROM ONLY ${name}`);
    const { lo, hi } = r.rows[0]!;
    if (lo === null || hi === null) return [];
    const [a, b] = [BigInt(lo), BigInt(hi)];
    return Array.from({ length: n }, (_, i) => [(a + ((b - a + 1n) * BigInt(i)) / BigInt(n)).toString()]);
  }
  const cols = keyCols.map((col) => `x.${quoteIdent(col)}`);
  const percent = Math.min(100, Math.max(0.0001, (100 * n * SAMPLE_PAGES_PER_CHUNK) / Math.max(extent.pages, 1)));
  // Output columns are aliased: ORDER BY a bare name would sort by the text output column.
  const r = await c.query({
    text: `SELECT ${cols.map((col, i) => `${col}::text AS k${i}`).join(', ')} FROM ONLY ${name} AS x
             TABLESAMPLE SYSTEM (${percent.toFixed(6)}) ORDER BY ${cols.join(', ')}`,
    rowMode: 'array',
  });
  return r.rows as string[][];
}
