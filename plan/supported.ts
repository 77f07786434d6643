/**
 * What the plan schema accepts but this version cannot run yet. Kept apart from validation so a
 * plan written for a later version still parses, and `check` can say exactly what is missing.
 */
import type { PlanIssue } from './parse-plan';
import type { Plan } from './plan-schema';

export function unsupportedFeatures(plan: Plan): PlanIssue[] {
  const issues: PlanIssue[] = [];
  if (plan.mode === 'dump-restore' && (plan.source.engine !== 'postgres' || plan.target.engine !== 'postgres')) {
    // pg_dump reads only PostgreSQL: this is not a gap a later version fills.
    issues.push({
      path: 'mode',
      value: plan.mode,
      message: `dump-restore is PostgreSQL → PostgreSQL only (source.engine is ${plan.source.engine}); use mode full-load`,
    });
  }
  // (parsePlan already refuses startPosition outside mode cdc.)
  if (plan.cdc.startPosition !== undefined && plan.source.engine === 'postgres' && !/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(plan.cdc.startPosition)) {
    issues.push({ path: 'cdc.startPosition', value: plan.cdc.startPosition, message: 'expected an LSN such as 0/16B3748 for a postgres source' });
  }
  if (plan.runner !== 'native') {
    issues.push({ path: 'runner', value: plan.runner, message: 'not supported yet: this version runs with runner native' });
  }
  if (plan.source.engine === 'mysql' && (plan.mode === 'full-load-and-cdc' || plan.mode === 'cdc')) {
    issues.push({ path: 'mode', value: plan.mode, message: 'not supported yet from a mysql source: this version loads MySQL/MariaDB with mode full-load (binlog CDC comes next)' });
  }
  if (plan.keys.length > 0) {
    issues.push({ path: 'keys', message: 'not supported yet: key redesign (remove keys to migrate the keys as they are)' });
  }
  return issues;
}
