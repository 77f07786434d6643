import { largerFirst, listed } from '../../plan/table-lists';
import { ApplicationFailure } from '@temporalio/common';
import type { ActivityInput, CreateTablesResult } from '../../plan/migration-types';
import { qualifiedKey, type SchemaModel } from '../../plan/schema-model';
import { withHeartbeat } from '../heartbeat';
import { ensureBookkeeping, readModelRecord } from './bookkeeping';
import { refuseExistingTables } from '../pg/catalog';
import { withConnection, type PgEndpoint } from '../pg/connection';
import { createSchemaStatements, schemasAndExtensions } from './ddl';
import { withPostgisTypes } from './postgis';
import { applySchemaObjects } from './schema-objects';
import type { Client } from 'pg';
import { toFailure } from '../pg/errors';

/**
 * DDL statements per target transaction. Each new table takes a few locks until commit and the
 * server's lock table holds max_locks_per_transaction × max_connections (6,400 by default):
 * one transaction for a 10,000-table schema would run out of shared memory.
 */
const STATEMENTS_PER_TRANSACTION = 1000;

/**
 * Introspects the source (through its engine) and creates the target's schemas, types, sequences and tables (no
 * keys, indexes or foreign keys: those come after the load). MySQL's spatial columns become
 * PostGIS geometry where the target has PostGIS or it can be created here (postgis.ts). A schema of up to
 * STATEMENTS_PER_TRANSACTION statements is created in one transaction together with the
 * migration's bookkeeping row, so a failure leaves nothing half-made and a retry knows whether
 * this migration already created them. A larger one commits in batches, each with the count of
 * statements done in the bookkeeping row, so a retry goes on from the last committed batch.
 */
export async function createTables(
  { migration }: ActivityInput,
  tgt: PgEndpoint,
  /** The source's schema as the neutral model (the source engine introspects it). */
  introspect: () => Promise<SchemaModel>,
): Promise<CreateTablesResult> {
  let done = 0;
  return withHeartbeat(() => ({ statementsDone: done }), async () => {
    return withConnection(tgt, 'create tables', async (c) => {
      const fail = (err: unknown, doing: string, table?: string) =>
        toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, doing, table });
      try {
        await ensureBookkeeping(c);
      } catch (err) {
        throw fail(err, 'creating schema _dbferry');
      }
      const record = await readModelRecord(c, migration.runId);
      if (record && record.statementsDone === null) {
        // The tables exist; the schema objects may not all (a retry after they failed).
        await createSchemaObjects(c, tgt, record.model, async () => undefined);
        return result(record.model, 0, true);
      }

      // A retry of a large schema goes on from the model it recorded, where it stopped; only a
      // first attempt reads the source (introspecting 10,000 tables again would be wasted).
      let recorded = record?.model ?? (await introspect());
      if (!record) {
        await refuseExistingTables(c, tgt.description, recorded.tables, 'load into', migration.name);
        // Decided once, before the model is recorded: every later step reads the column types from it.
        try {
          recorded = (await withPostgisTypes(c, recorded)).model;
        } catch (err) {
          throw fail(err, 'looking for PostGIS on the target');
        }
      }
      const statements = createSchemaStatements(recorded);
      done = record?.statementsDone ?? 0;
      await createSchemaObjects(c, tgt, recorded, () => createOwn());
      return result(recorded, statements.length, false);

      async function createOwn(): Promise<void> {
        for (;;) {
          const end = Math.min(statements.length, done + STATEMENTS_PER_TRANSACTION);
          const last = end === statements.length;
          await c.query('BEGIN');
          try {
            for (const sql of statements.slice(done, end)) {
              try {
                await c.query(sql);
              } catch (err) {
                throw fail(err, `running: ${sql.split('\n')[0]!.slice(0, 200)}`);
              }
            }
            if (done === 0 && !record) {
              await c.query('INSERT INTO _dbferry.migrations (run_id, name, model, statements_done) VALUES ($1, $2, $3, $4)', [
                migration.runId,
                migration.name,
                JSON.stringify(recorded),
                last ? null : end,
              ]);
            } else {
              await c.query('UPDATE _dbferry.migrations SET statements_done = $2 WHERE run_id = $1', [migration.runId, last ? null : end]);
            }
            await c.query('COMMIT');
          } catch (err) {
            await c.query('ROLLBACK').catch(() => undefined);
            throw err instanceof ApplicationFailure ? err : fail(err, 'creating tables');
          }
          done = end;
          if (last) break;
        }
      }
    });
  });
}

/**
 * The source's other schema objects around dbferry's own tables: first those the tables may
 * need (a function a default or a check calls), then the tables, then the objects that need
 * them (views, functions returning a table's rows). Each run passes over what exists already.
 */
async function createSchemaObjects(c: Client, tgt: PgEndpoint, model: SchemaModel, createTables: () => Promise<void>): Promise<void> {
  const pre = model.objects?.pre ?? [];
  // Their schemas first (a collation, a function lives in one); the tables' DDL repeats these harmlessly.
  if (pre.length > 0) {
    for (const sql of schemasAndExtensions(model)) {
      await c.query(sql).catch((err: unknown) => {
        throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, doing: `running: ${sql}` });
      });
    }
  }
  const later = await applySchemaObjects(c, tgt, pre, { deferMissing: true });
  await createTables();
  await applySchemaObjects(c, tgt, later, { deferMissing: false });
}

function result(model: SchemaModel, statements: number, alreadyCreated: boolean): CreateTablesResult {
  return { tables: listed(model.tables, largerFirst((t) => t.estimatedBytes)).map(qualifiedKey), tableCount: model.tables.length, statements, alreadyCreated };
}
