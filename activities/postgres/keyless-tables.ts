import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { FailureType, CHANGES_NOT_CAPTURED } from '../../plan/failure-types';
import { qualifiedKey, type SchemaModel } from '../../plan/schema-model';
import type { PgEndpoint } from '../pg/connection';

/**
 * Changes find their rows by the primary key; a table without one only with REPLICA IDENTITY
 * FULL (its changes carry the whole old row).
 */
export async function refuseKeylessTables(c: Client, model: SchemaModel, src: PgEndpoint): Promise<void> {
  const candidates = model.tables.filter((t) => !t.primaryKey && !t.partitioned);
  if (candidates.length === 0) return;
  const r = await c.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND c.relreplident <> 'f'`,
    [candidates.map((t) => t.schema), candidates.map((t) => t.name)],
  );
  const keyless = r.rows;
  if (keyless.length === 0) return;
  throw ApplicationFailure.create({
    type: FailureType.PreflightBlocked,
    nonRetryable: true,
    message: `${src.description}: CDC needs a primary key (or REPLICA IDENTITY FULL) on every table; ${keyless.map(qualifiedKey).join(', ')} ${keyless.length === 1 ? 'has' : 'have'} neither`,
    details: [{ table: qualifiedKey(keyless[0]!), code: CHANGES_NOT_CAPTURED, hint: 'add a primary key on the source (or ALTER TABLE … REPLICA IDENTITY FULL), or exclude the table, then run dbferry retry' }],
  });
}
