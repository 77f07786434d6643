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
export async function refuseExistingTables(
  client: ClientBase,
  target: string,
  tables: QualifiedName[],
  writing: string,
  /** The migration's name: tables an earlier run of it created are named as such. */
  migrationName?: string,
): Promise<void> {
  const names = await existingTables(client, tables);
  if (names.length === 0) return;
  const earlier = migrationName ? await earlierRunTables(client, migrationName, names) : [];
  const tablesWord = names.length === 1 ? 'table' : 'tables';
  const what = earlier.length === names.length
    ? // An aborted or failed run of the same migration left them: say so, not "a table it did not create".
      `${tablesWord} ${names.join(', ')} ${names.length === 1 ? 'was' : 'were'} created by an earlier run of migration ${migrationName} (aborted or failed) and may be partly loaded; dbferry will not ${writing} ${names.length === 1 ? 'it' : 'them'} again`
    : `${tablesWord} ${names.join(', ')} already ${names.length === 1 ? 'exists' : 'exist'} on the target; dbferry will not ${writing} a table it did not create`;
  throw ApplicationFailure.create({
    type: FailureType.TargetObjectConflict,
    nonRetryable: true,
    message: `${target}: ${what}`,
    details: [{ endpoint: target, table: names[0], hint: 'drop or rename the table on the target (or exclude it in tables.exclude), then run dbferry retry' }],
  });
}

/** Which of `names` the recorded model of an earlier run of this migration has. */
async function earlierRunTables(client: ClientBase, migrationName: string, names: string[]): Promise<string[]> {
  const present = await client.query<{ present: boolean }>("SELECT to_regclass('_dbferry.migrations') IS NOT NULL AS present");
  if (!present.rows[0]?.present) return [];
  const r = await client.query<{ key: string }>(
    `SELECT DISTINCT (t->>'schema') || '.' || (t->>'name') AS key
       FROM _dbferry.migrations m, jsonb_array_elements(m.model->'tables') t
      WHERE m.name = $1 AND (t->>'schema') || '.' || (t->>'name') = ANY($2)`,
    [migrationName, names],
  );
  return r.rows.map((x) => x.key);
}
