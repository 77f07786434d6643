import type { TableModel } from '../../plan/schema-model';
import { qualifiedTable, quoteIdent } from './ddl';

/**
 * Row count and an order-independent checksum of every column: the sum of a 64-bit hash of
 * each row's text form. Both sides run it with the same session settings (connection.ts), so
 * equal rows give equal sums whatever their physical order. hashtextextended (PostgreSQL 11+)
 * costs a third of md5 here, and the checksum scans every row twice (source and target).
 * ONLY: like COPY, an inheritance parent's own rows, not its children's.
 */
export function checksumQuery(t: TableModel, withChecksum: boolean, where = ''): string {
  const from = `FROM ONLY ${qualifiedTable(t.schema, t.name)}${where}`;
  if (!withChecksum) return `SELECT count(*)::text AS rows, NULL::text AS checksum ${from}`;
  const row = `ROW(${t.columns.map((c) => quoteIdent(c.name)).join(', ')})`;
  return `SELECT count(*)::text AS rows,
    coalesce(sum(hashtextextended(${row}::text, 0)::numeric), 0)::text AS checksum ${from}`;
}
