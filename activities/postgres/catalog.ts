import type { ClientBase } from 'pg';
import { qualifiedKey, type QualifiedName } from '../../plan/schema-model';

/**
 * Which of these tables exist on a server (and meet `condition`, a predicate over the pg_class
 * row `c`), as sorted `schema.table` keys. Names travel as parameters: hostile ones are safe.
 */
export async function existingTables(client: ClientBase, tables: QualifiedName[], condition = 'true'): Promise<string[]> {
  const r = await client.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND (${condition})`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return r.rows.map(qualifiedKey).sort();
}
