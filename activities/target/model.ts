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

const byKeyOf = new WeakMap<SchemaModel, ReadonlyMap<string, TableModel>>();

/**
 * A run's tables by qualifiedKey, built once per model object (loadModel's cached one): every
 * load task asks for it, and building it per task cost O(tables²) (about 5 GB of garbage in a
 * 50,000-table load).
 */
export function tablesByKey(model: SchemaModel): ReadonlyMap<string, TableModel> {
  let m = byKeyOf.get(model);
  if (!m) byKeyOf.set(model, (m = new Map(model.tables.map((t) => [qualifiedKey(t), t]))));
  return m;
}
