import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import type { QualifiedName, SqlObject } from '../../plan/schema-model';
import { qualifiedTable } from '../../plan/sql-names';
import type { PgEndpoint } from '../pg/connection';
import { toFailure } from '../pg/errors';

/** The object exists already, made by an earlier attempt of this step (some kinds, e.g. a text search configuration, say so as a unique violation of the catalog). */
const EXISTS = new Set(['42723', '42710', '42P07', '42P06', '42P16', '23505']);
/** It needs something not created yet (a table, a type, a function): tried again later. */
const NEEDS_LATER = new Set(['42P01', '42704', '42883', '3F000', '42703']);

/**
 * Runs schema objects' DDL (see SchemaObjects) on the target, each in a savepoint of one
 * transaction, in the session pg_dump's script assumes (empty search_path, function bodies not
 * checked). An object that exists already is passed over (a retried step made it). With
 * `deferMissing`, one that needs an object not made yet is returned, to be run again after the
 * tables exist; otherwise that fails the step, naming the object.
 */
export async function applySchemaObjects(c: Client, tgt: PgEndpoint, objects: SqlObject[], opts: { deferMissing: boolean }): Promise<SqlObject[]> {
  if (objects.length === 0) return [];
  const deferred: SqlObject[] = [];
  await c.query('BEGIN');
  try {
    await c.query(`SELECT pg_catalog.set_config('search_path', '', true)`);
    await c.query('SET LOCAL check_function_bodies = false');
    await c.query('SET LOCAL client_min_messages = warning');
    await c.query('SET LOCAL xmloption = content');
    for (const o of objects) {
      await c.query('SAVEPOINT dbferry_object');
      try {
        await c.query(o.sql);
        await c.query('RELEASE SAVEPOINT dbferry_object');
      } catch (err) {
        await c.query('ROLLBACK TO SAVEPOINT dbferry_object');
        const code = (err as { code?: string }).code ?? '';
        if (EXISTS.has(code)) continue;
        if (opts.deferMissing && NEEDS_LATER.has(code)) {
          deferred.push(o);
          continue;
        }
        throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, doing: `creating ${o.name}` });
      }
    }
    await c.query('COMMIT');
    return deferred;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    if (err instanceof ApplicationFailure) throw err;
    throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, doing: 'creating schema objects' });
  }
}

/** Fills materialized views the source had populated, now that their tables hold the rows. */
export async function refreshMaterializedViews(c: Client, tgt: PgEndpoint, views: QualifiedName[]): Promise<void> {
  for (const v of views) {
    const name = qualifiedTable(v.schema, v.name);
    try {
      await c.query(`REFRESH MATERIALIZED VIEW ${name}`);
    } catch (err) {
      throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, doing: `refreshing materialized view ${name}` });
    }
  }
}
