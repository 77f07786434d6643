import { ApplicationFailure } from '@temporalio/common';
import type { ClientBase } from 'pg';
import { FailureType } from '../../plan/failure-types';
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

/**
 * Refuses to write into tables dbferry did not create: any of `tables` already on the target
 * is a TargetObjectConflict naming them (a person decides what to do with it).
 */
export async function refuseExistingTables(client: ClientBase, target: string, tables: QualifiedName[], writing: string): Promise<void> {
  const names = await existingTables(client, tables);
  if (names.length === 0) return;
  throw ApplicationFailure.create({
    type: FailureType.TargetObjectConflict,
    nonRetryable: true,
    message: `${target}: ${names.length === 1 ? 'table' : 'tables'} ${names.join(', ')} already ${names.length === 1 ? 'exists' : 'exist'} on the target; dbferry will not ${writing} a table it did not create`,
    details: [{ endpoint: target, table: names[0], hint: 'drop or rename the table on the target (or exclude it in tables.exclude), then run dbferry retry' }],
  });
}
