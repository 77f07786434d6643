/**
 * The target's schema model from the source's: the plan's table-mapping transformation rules,
 * then its key redesign. Pure; preflight shows what it finds as findings, create-tables
 * records the result (every later step reads names, columns and keys from it).
 */
import { applyTransformations, type TransformationNote } from './dms-transformations';
import { redesignKeys } from './key-redesign';
import type { Plan } from './plan-schema';
import { qualifiedKey, type SchemaModel } from './schema-model';

export interface TargetModelIssue {
  /** The plan field: `tables.mappings.rules[3]…` or `keys[1]…`. */
  path: string;
  message: string;
}

export type TargetModelResult = { ok: true; model: SchemaModel; notes: TransformationNote[] } | { ok: false; issues: TargetModelIssue[]; notes: TransformationNote[] };

export function targetModel(source: SchemaModel, plan: Pick<Plan, 'tables' | 'keys' | 'source' | 'mode'>): TargetModelResult {
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
    const defined = notes.filter((n) => n.kind === 'define-primary-key' && n.table);
    const issues: TargetModelIssue[] = [];
    for (const n of defined) {
      const key = qualifiedKey(n.table!);
      // CDC finds a changed row by the key: MySQL's row images are whole rows (any key is in
      // them); pgoutput sends only the replica identity's columns, so another key would miss
      // deletes and key changes.
      if (plan.source.engine === 'postgres' && (plan.mode === 'full-load-and-cdc' || plan.mode === 'cdc')) {
        issues.push({
          path: 'tables.mappings',
          message: `rule ${n.ruleId}: define-primary-key on ${key} is not supported with CDC from PostgreSQL (pgoutput sends the source's own key, the replica identity, to find a changed row)`,
        });
      }
      plan.keys.forEach((k, i) => {
        if (k.table === key || k.table === `"${n.table!.schema.replace(/"/g, '""')}"."${n.table!.name.replace(/"/g, '""')}"`) {
          issues.push({ path: `keys[${i}].table`, message: `${k.table} also gets its primary key from table-mapping rule ${n.ruleId} (define-primary-key): design its key in one place` });
        }
      });
    }
    if (issues.length > 0) return { ok: false, notes, issues };
  }
  const redesigned = redesignKeys(model, plan.keys);
  if (!redesigned.ok) return { ok: false, notes, issues: redesigned.issues };
  return { ok: true, model: redesigned.model, notes };
}
