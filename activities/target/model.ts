import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import { qualifiedKey, type SchemaModel, type TableModel } from '../../plan/schema-model';
import { readModel } from './bookkeeping';
import { withConnection, type PgEndpoint } from '../pg/connection';

// A run's model never changes once recorded, and a loader task would otherwise read (and parse)
// the whole model of a 10,000-table schema for each of its few tables. A few runs at most.
const cache = new Map<string, SchemaModel>();

/** The schema model create-tables recorded on the target for this migration run. */
export async function loadModel(tgt: PgEndpoint, runId: string): Promise<SchemaModel> {
  const cached = cache.get(runId);
  if (cached) return cached;
  const model = await withConnection(tgt, 'read model', (c) => readModel(c, runId));
  if (!model) {
    throw ApplicationFailure.create({
      type: FailureType.SourceObjectMissing,
      nonRetryable: true,
      message: `${tgt.description}: this migration's tables were not created (no record in _dbferry.migrations)`,
      details: [{ hint: 'the create-tables step must succeed first' }],
    });
  }
  if (cache.size >= 4) cache.delete(cache.keys().next().value!);
  cache.set(runId, model);
  return model;
}

/** A run's tables by qualifiedKey. */
export function tablesByKey(model: SchemaModel): Map<string, TableModel> {
  return new Map(model.tables.map((t) => [qualifiedKey(t), t]));
}
