import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import { qualifiedKey, type SchemaModel, type TableModel } from '../../plan/schema-model';
import { modelRevision, readModelRecord } from './bookkeeping';
import { withConnection, type PgEndpoint } from '../pg/connection';

// A loader task would otherwise read (and parse) the whole model of a 10,000-table schema for
// each of its few tables. A run's model changes only when the operator takes a table out of the
// migration, which bumps its revision: one small read tells whether the copy is current.
const cache = new Map<string, { revision: number; model: SchemaModel }>();

/** The schema model create-tables recorded on the target for this migration run. */
export async function loadModel(tgt: PgEndpoint, runId: string): Promise<SchemaModel> {
  const model = await withConnection(tgt, 'read model', async (c) => {
    const cached = cache.get(runId);
    if (cached && cached.revision === (await modelRevision(c, runId))) return cached.model;
    const record = await readModelRecord(c, runId);
    if (record) {
      if (cache.size >= 4 && !cache.has(runId)) cache.delete(cache.keys().next().value!);
      cache.set(runId, { revision: record.revision, model: record.model });
    }
    return record?.model;
  });
  if (!model) {
    throw ApplicationFailure.create({
      type: FailureType.SourceObjectMissing,
      nonRetryable: true,
      message: `${tgt.description}: this migration's tables were not created (no record in _dbferry.migrations)`,
      details: [{ hint: 'the create-tables step must succeed first' }],
    });
  }
  return model;
}

/** A run's tables by qualifiedKey. */
export function tablesByKey(model: SchemaModel): Map<string, TableModel> {
  return new Map(model.tables.map((t) => [qualifiedKey(t), t]));
}
