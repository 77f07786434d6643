/**
 * What the plan schema accepts but this version cannot run yet. Kept apart from validation so a
 * plan written for a later version still parses, and `check` can say exactly what is missing.
 */
import type { PlanIssue } from './parse-plan';
import type { Plan } from './plan-schema';

export function unsupportedFeatures(plan: Plan): PlanIssue[] {
  const issues: PlanIssue[] = [];
  if (plan.mode !== 'full-load' && plan.mode !== 'dump-restore') {
    issues.push({ path: 'mode', value: plan.mode, message: 'not supported yet: this version runs mode full-load or dump-restore' });
  }
  if (plan.mode === 'dump-restore' && (plan.source.engine !== 'postgres' || plan.target.engine !== 'postgres')) {
    // pg_dump reads only PostgreSQL: this is not a gap a later version fills.
    issues.push({
      path: 'mode',
      value: plan.mode,
      message: `dump-restore is PostgreSQL → PostgreSQL only (source.engine is ${plan.source.engine}); use mode full-load`,
    });
  }
  if (plan.runner !== 'native') {
    issues.push({ path: 'runner', value: plan.runner, message: 'not supported yet: this version runs with runner native' });
  }
  if (plan.source.engine !== 'postgres') {
    issues.push({ path: 'source.engine', value: plan.source.engine, message: 'not supported yet: this version migrates from postgres' });
  }
  if (plan.keys.length > 0) {
    issues.push({ path: 'keys', message: 'not supported yet: key redesign (remove keys to migrate the keys as they are)' });
  }
  return issues;
}
