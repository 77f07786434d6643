/**
 * The target's schema model from the source's: the plan's table-mapping transformation rules,
 * then its key redesign. Pure; preflight shows what it finds as findings, create-tables
 * records the result (every later step reads names, columns and keys from it).
 */
import { applyTransformations, type TransformationNote } from './dms-transformations';
import { redesignKeys } from './key-redesign';
import type { Plan } from './plan-schema';
import type { SchemaModel } from './schema-model';

export interface TargetModelIssue {
  /** The plan field: `tables.mappings.rules[3]…` or `keys[1]…`. */
  path: string;
  message: string;
}

export type TargetModelResult = { ok: true; model: SchemaModel; notes: TransformationNote[] } | { ok: false; issues: TargetModelIssue[]; notes: TransformationNote[] };

export function targetModel(source: SchemaModel, plan: Pick<Plan, 'tables' | 'keys' | 'source'>): TargetModelResult {
  let model = source;
  let notes: TransformationNote[] = [];
  const rules = plan.tables.mappings?.rules ?? [];
  if (rules.some((r) => r['rule-type'] === 'transformation')) {
    const mapped = applyTransformations(source, rules, plan.source.engine);
    notes = mapped.changes;
    if (!mapped.ok) {
      return { ok: false, notes, issues: mapped.errors.map((e) => ({ path: e.path ?? 'tables.mappings', message: `rule ${e.ruleId}: ${e.message}` })) };
    }
    model = mapped.model;
  }
  const redesigned = redesignKeys(model, plan.keys);
  if (!redesigned.ok) return { ok: false, notes, issues: redesigned.issues };
  return { ok: true, model: redesigned.model, notes };
}
