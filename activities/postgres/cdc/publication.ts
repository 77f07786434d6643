import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { FailureType } from '../../../plan/failure-types';
import type { MigrationRef } from '../../../plan/migration-types';
import { qualifiedKey, type QualifiedName } from '../../../plan/schema-model';
import { qualifiedTable, quoteIdent, quoteLiteral } from '../../target/ddl';

/**
 * A publication dbferry creates carries this comment: cleanup and finalize drop only what
 * dbferry made (an existing publication the plan names belongs to someone else).
 */
export function publicationComment(migration: MigrationRef): string {
  return `dbferry migration ${migration.name} (run ${migration.runId})`;
}

export interface PublicationState {
  existed: boolean;
  ownedByDbferry: boolean;
}

/**
 * Makes sure `name` publishes every selected table (inserts, updates, deletes, truncates).
 * It must exist before the slot is created: pgoutput reads the publication as of each
 * change's position, and a change older than the publication would fail the stream.
 */
export async function ensurePublication(c: Client, name: string, tables: QualifiedName[], migration: MigrationRef, endpoint: string): Promise<PublicationState> {
  const existing = await c.query<{ comment: string | null; ins: boolean; upd: boolean; del: boolean; tru: boolean }>(
    `SELECT obj_description(p.oid, 'pg_publication') AS comment, pubinsert AS ins, pubupdate AS upd, pubdelete AS del, pubtruncate AS tru
       FROM pg_publication p WHERE pubname = $1`,
    [name],
  );
  const row = existing.rows[0];
  if (!row) {
    // One statement: the publication never exists half-made. FOR TABLE with thousands of names is fine.
    await c.query(
      `CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE ${tables.map((t) => `ONLY ${qualifiedTable(t.schema, t.name)}`).join(', ')}`,
    );
    await c.query(`COMMENT ON PUBLICATION ${quoteIdent(name)} IS ${quoteLiteral(publicationComment(migration))}`);
    return { existed: false, ownedByDbferry: true };
  }
  const ownedByDbferry = row.comment?.startsWith(`dbferry migration ${migration.name} `) ?? false;
  const missing = await unpublishedTables(c, name, tables);
  if (missing.length > 0) {
    if (!ownedByDbferry) {
      throw ApplicationFailure.create({
        type: FailureType.SourceObjectMissing,
        nonRetryable: true,
        message: `${endpoint}: publication ${name} exists but does not publish ${missing.map(qualifiedKey).join(', ')}`,
        details: [{ table: qualifiedKey(missing[0]!), hint: `add the tables to publication ${name} (ALTER PUBLICATION … ADD TABLE) or name another cdc.publication, then run dbferry retry` }],
      });
    }
    await c.query(`ALTER PUBLICATION ${quoteIdent(name)} ADD TABLE ${missing.map((t) => `ONLY ${qualifiedTable(t.schema, t.name)}`).join(', ')}`);
  }
  const unpublished = (['ins', 'upd', 'del', 'tru'] as const).filter((k) => !row[k]);
  if (unpublished.length > 0) {
    const names = { ins: 'insert', upd: 'update', del: 'delete', tru: 'truncate' };
    throw ApplicationFailure.create({
      type: FailureType.SourceObjectMissing,
      nonRetryable: true,
      message: `${endpoint}: publication ${name} does not publish ${unpublished.map((k) => names[k]).join(', ')}: those changes would be lost`,
      details: [{ hint: `ALTER PUBLICATION ${name} SET (publish = 'insert, update, delete, truncate'), then run dbferry retry` }],
    });
  }
  return { existed: true, ownedByDbferry };
}

async function unpublishedTables(c: Client, publication: string, tables: QualifiedName[]): Promise<QualifiedName[]> {
  const r = await c.query<{ schema: string; name: string }>(
    `SELECT s AS schema, t AS name FROM unnest($2::text[], $3::text[]) AS x(s, t)
      WHERE NOT EXISTS (SELECT 1 FROM pg_publication_tables p WHERE p.pubname = $1 AND p.schemaname = x.s AND p.tablename = x.t)`,
    [publication, tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return r.rows;
}

/** Drops the publication when dbferry created it for this migration; says what it did. */
export async function dropOwnedPublication(c: Client, name: string, migration: MigrationRef): Promise<'dropped' | 'absent' | 'not-ours'> {
  const r = await c.query<{ comment: string | null }>(
    `SELECT obj_description(oid, 'pg_publication') AS comment FROM pg_publication WHERE pubname = $1`,
    [name],
  );
  const row = r.rows[0];
  if (!row) return 'absent';
  if (!row.comment?.startsWith(`dbferry migration ${migration.name} `)) return 'not-ours';
  await c.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(name)}`);
  return 'dropped';
}
