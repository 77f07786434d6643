import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { FailureType, CHANGES_NOT_CAPTURED } from '../../../plan/failure-types';
import type { MigrationRef } from '../../../plan/migration-types';
import { qualifiedKey, type QualifiedName } from '../../../plan/schema-model';
import { qualifiedTable, quoteIdent, quoteLiteral } from '../../../plan/sql-names';

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
 * Makes sure `name` publishes every selected table (inserts, updates, deletes, truncates) that
 * can be published without harm. It must exist before the slot is created: pgoutput reads the
 * publication as of each change's position, and a change older than the publication would fail
 * the stream.
 *
 * A table without a usable replica identity (no primary key and REPLICA IDENTITY DEFAULT, or
 * NOTHING) is never added to dbferry's publication: PostgreSQL would then refuse the
 * application's every UPDATE and DELETE on it ("cannot update table … because it does not have
 * a replica identity and publishes updates"). CDC refuses such a table with the remedy.
 * Once the slot exists (`afterSlot`), a table dbferry's publication lacks cannot be added: its
 * changes since the load were not captured, and a late ADD TABLE would hide that.
 */
export async function ensurePublication(
  c: Client,
  name: string,
  tables: QualifiedName[],
  migration: MigrationRef,
  endpoint: string,
  opts: { afterSlot: boolean } = { afterSlot: false },
): Promise<PublicationState> {
  const existing = await c.query<{ comment: string | null; ins: boolean; upd: boolean; del: boolean; tru: boolean }>(
    `SELECT obj_description(p.oid, 'pg_publication') AS comment, pubinsert AS ins, pubupdate AS upd, pubdelete AS del, pubtruncate AS tru
       FROM pg_publication p WHERE pubname = $1`,
    [name],
  );
  const row = existing.rows[0];
  // A partitioned parent is published through its partitions (its changes are theirs): listed
  // itself it would also publish partitions without a replica identity, and pg_publication_tables
  // never names it (with publish_via_partition_root off), so it would always look missing.
  tables = await withoutPartitionedParents(c, tables);
  const unsafe = new Set((await withoutReplicaIdentity(c, tables)).map(qualifiedKey));
  const publishable = tables.filter((t) => !unsafe.has(qualifiedKey(t)));
  const list = (ts: QualifiedName[]) => ts.map((t) => `ONLY ${qualifiedTable(t.schema, t.name)}`).join(', ');
  if (!row) {
    // One statement: the publication never exists half-made. FOR TABLE with thousands of names is fine.
    await c.query(`CREATE PUBLICATION ${quoteIdent(name)}${publishable.length > 0 ? ` FOR TABLE ${list(publishable)}` : ''}`);
    await c.query(`COMMENT ON PUBLICATION ${quoteIdent(name)} IS ${quoteLiteral(publicationComment(migration))}`);
    return { existed: false, ownedByDbferry: true };
  }
  const ownedByDbferry = row.comment?.startsWith(`dbferry migration ${migration.name} `) ?? false;
  const missing = await unpublishedTables(c, name, ownedByDbferry ? publishable : tables);
  if (missing.length > 0) {
    if (!ownedByDbferry) {
      throw ApplicationFailure.create({
        type: FailureType.SourceObjectMissing,
        nonRetryable: true,
        message: `${endpoint}: publication ${name} (on the source) exists but does not publish ${missing.map(qualifiedKey).join(', ')}`,
        details: [{ table: qualifiedKey(missing[0]!), hint: `add the tables to publication ${name} on the source (ALTER PUBLICATION … ADD TABLE) or name another cdc.publication, then run dbferry retry` }],
      });
    }
    if (opts.afterSlot) {
      const names = missing.map(qualifiedKey).join(', ');
      throw ApplicationFailure.create({
        type: FailureType.PreflightBlocked,
        nonRetryable: true,
        message: `${endpoint}: ${names} ${missing.length === 1 ? 'was' : 'were'} not published while the load ran (no replica identity then: publishing would have made the application's updates and deletes fail), so ${missing.length === 1 ? 'its' : 'their'} changes since the load were not captured`,
        details: [{ table: qualifiedKey(missing[0]!), code: CHANGES_NOT_CAPTURED, hint: 'abort this migration and start it again now that the table has a primary key or REPLICA IDENTITY FULL (or exclude it in tables.exclude)' }],
      });
    }
    await c.query(`ALTER PUBLICATION ${quoteIdent(name)} ADD TABLE ${list(missing)}`);
  }
  const unpublished = (['ins', 'upd', 'del', 'tru'] as const).filter((k) => !row[k]);
  if (unpublished.length > 0) {
    const names = { ins: 'insert', upd: 'update', del: 'delete', tru: 'truncate' };
    throw ApplicationFailure.create({
      type: FailureType.SourceObjectMissing,
      nonRetryable: true,
      message: `${endpoint}: publication ${name} (on the source) does not publish ${unpublished.map((k) => names[k]).join(', ')}: those changes would be lost`,
      details: [{ hint: `ALTER PUBLICATION ${name} SET (publish = 'insert, update, delete, truncate') on the source, then run dbferry retry` }],
    });
  }
  return { existed: true, ownedByDbferry };
}

/**
 * Tables whose UPDATE and DELETE PostgreSQL would refuse once published: no replica identity
 * (NOTHING, DEFAULT without a primary key, USING INDEX of a dropped index). Partitioned parents
 * are judged by PostgreSQL on their partitions, which are tables of their own here.
 */
async function withoutReplicaIdentity(c: Client, tables: QualifiedName[]): Promise<QualifiedName[]> {
  const r = await c.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND c.relkind = 'r'
        AND (c.relreplident = 'n'
             OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
             OR (c.relreplident = 'i' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return r.rows;
}

async function withoutPartitionedParents(c: Client, tables: QualifiedName[]): Promise<QualifiedName[]> {
  const r = await c.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND c.relkind = 'p'`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  const parents = new Set(r.rows.map(qualifiedKey));
  return tables.filter((t) => !parents.has(qualifiedKey(t)));
}

async function unpublishedTables(c: Client, publication: string, tables: QualifiedName[]): Promise<QualifiedName[]> {
  // A publication with publish_via_partition_root (PostgreSQL 13+) names the root, not its
  // partitions: a partition is published when one of its ancestors is.
  const viaRoot = (await c.query<{ v: number }>(`SELECT current_setting('server_version_num')::int AS v`)).rows[0]!.v >= 130000;
  const r = await c.query<{ schema: string; name: string }>(
    viaRoot
      ? `SELECT s AS schema, t AS name FROM unnest($2::text[], $3::text[]) AS x(s, t)
          WHERE NOT EXISTS (SELECT 1 FROM pg_publication_tables p
                             JOIN pg_namespace n ON n.nspname = p.schemaname JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
                            WHERE p.pubname = $1
                              AND ((p.schemaname = x.s AND p.tablename = x.t)
                                   OR c.oid IN (SELECT relid FROM pg_partition_ancestors(format('%I.%I', x.s, x.t)::regclass))))`
      : `SELECT s AS schema, t AS name FROM unnest($2::text[], $3::text[]) AS x(s, t)
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
