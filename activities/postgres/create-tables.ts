import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import type { ActivityInput, CreateTablesResult } from '../../plan/migration-types';
import { qualifiedKey, type SchemaModel } from '../../plan/schema-model';
import { withHeartbeat } from '../heartbeat';
import { ensureBookkeeping, readModel } from './bookkeeping';
import { existingTables } from './catalog';
import { resolveEndpoint, withConnection } from './connection';
import { createSchemaStatements } from './ddl';
import { toFailure } from './errors';
import { introspectPostgres } from './introspect';
import { tableSelector } from './selection';

/**
 * Introspects the source and creates the target's schemas, types, sequences and tables (no
 * keys, indexes or foreign keys: those come after the load). All of it in one transaction
 * together with the migration's bookkeeping row, so a failure leaves nothing half-made and a
 * retry knows whether this migration already created them.
 */
export async function createTablesPostgres({ plan, migration }: ActivityInput): Promise<CreateTablesResult> {
  const [src, tgt] = await Promise.all([resolveEndpoint(plan, 'source'), resolveEndpoint(plan, 'target')]);
  let done = 0;
  return withHeartbeat(() => ({ statementsDone: done }), async () => {
    const model = await withConnection(src, 'introspect', async (c) => {
      try {
        return await introspectPostgres(c, tableSelector(plan));
      } catch (err) {
        throw toFailure(err, 'source', { endpoint: src.description, secrets: src.secrets, doing: 'reading the source schema' });
      }
    });
    return withConnection(tgt, 'create tables', async (c) => {
      const fail = (err: unknown, doing: string, table?: string) =>
        toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, doing, table });
      try {
        await ensureBookkeeping(c);
      } catch (err) {
        throw fail(err, 'creating schema _dbferry');
      }
      const existing = await readModel(c, migration.runId);
      if (existing) return result(existing, 0, true);

      const names = await existingTables(c, model.tables);
      if (names.length > 0) {
        throw ApplicationFailure.create({
          type: FailureType.TargetObjectConflict,
          nonRetryable: true,
          message: `${tgt.description}: ${names.length === 1 ? 'table' : 'tables'} ${names.join(', ')} already ${names.length === 1 ? 'exists' : 'exist'} on the target; dbferry will not load into a table it did not create`,
          details: [{ endpoint: tgt.description, table: names[0], hint: 'drop or rename the table on the target (or exclude it in tables.exclude), then run dbferry retry' }],
        });
      }

      const statements = createSchemaStatements(model);
      await c.query('BEGIN');
      try {
        for (const sql of statements) {
          try {
            await c.query(sql);
          } catch (err) {
            throw fail(err, `running: ${sql.split('\n')[0]!.slice(0, 200)}`);
          }
          done++;
        }
        await c.query('INSERT INTO _dbferry.migrations (run_id, name, model) VALUES ($1, $2, $3)', [migration.runId, migration.name, JSON.stringify(model)]);
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw err instanceof ApplicationFailure ? err : fail(err, 'creating tables');
      }
      return result(model, statements.length, false);
    });
  });
}

function result(model: SchemaModel, statements: number, alreadyCreated: boolean): CreateTablesResult {
  return { tables: model.tables.map(qualifiedKey), statements, alreadyCreated };
}
