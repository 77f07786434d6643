import type { Plan } from '../../plan/plan-schema';
import { compileSelection } from '../../plan/table-selection';

export function tableSelector(plan: Plan): (schema: string, table: string) => boolean {
  const sel = compileSelection(plan.tables);
  return (schema, table) => sel.matches(schema, table);
}
