import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import type { Plan } from '../../plan/plan-schema';
import type { SchemaModel } from '../../plan/schema-model';
import { targetModel } from '../../plan/target-model';

/** The target's model, or a failure naming the plan fields that do not fit the source's tables. */
export function targetModelOrThrow(source: SchemaModel, plan: Plan): SchemaModel {
  const r = targetModel(source, plan);
  if (r.ok) return r.model;
  throw ApplicationFailure.create({
    type: FailureType.PreflightBlocked,
    nonRetryable: true,
    message: `the plan's table mappings or keys do not fit the source's tables: ${r.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
    details: [{ hint: 'fix the plan and start the migration again' }],
  });
}
