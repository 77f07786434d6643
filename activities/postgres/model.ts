import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import type { SchemaModel } from '../../plan/schema-model';
import { readModel } from './bookkeeping';
import { withConnection, type PgEndpoint } from './connection';

/** The schema model create-tables recorded on the target for this migration run. */
export async function loadModel(tgt: PgEndpoint, runId: string): Promise<SchemaModel> {
  const model = await withConnection(tgt, 'read model', (c) => readModel(c, runId));
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
