/**
 * What the plan schema accepts but this version cannot run yet. Kept apart from validation so a
 * plan written for a later version still parses, and `check` can say exactly what is missing.
 */
import type { PlanIssue } from './parse-plan';
import type { Plan } from './plan-schema';

/** What a MySQL `cdc.startPosition` is: a binlog `file:offset`, or a GTID set (MariaDB `0-1-1234,…`, MySQL `uuid:1-5,…`). */
export function mysqlStartKind(text: string): 'file' | 'gtid' | undefined {
  const t = text.trim();
  // A GTID of one transaction (`uuid:5`) has the shape of a file:offset: the UUID tells.
  const uuid = '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}(:[\\w-]+)+';
  if (/^\d+-\d+-\d+(,\s*\d+-\d+-\d+)*$/.test(t) || new RegExp(`^${uuid}(,\\s*${uuid})*$`, 'i').test(t)) return 'gtid';
  if (/^[^:\s]+:\d+$/.test(t)) return 'file';
  return undefined;
}

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
  for (const side of ['source', 'target'] as const) {
    const ep = plan[side] as Plan['source'] & { auth?: string };
    if (ep.auth !== 'iam') continue;
    if (plan.runner === 'aws') {
      issues.push({ path: `${side}.auth`, value: 'iam', message: 'DMS endpoints need a password: with runner aws use auth: password (the URL may come from aws-secret:ARN)' });
    } else if (!ep.tls || ep.tls.mode === 'disable') {
      issues.push({ path: `${side}.tls`, message: `auth: iam needs TLS (RDS takes IAM tokens over TLS only): give ${side}.tls.mode require, verify-ca or verify-full` });
    }
  }
  if (plan.runner === 'aws' && plan.mode === 'dump-restore') {
    issues.push({ path: 'mode', value: plan.mode, message: 'dump-restore runs pg_dump/pg_restore on the workers: use runner native (aws.rds serves it there too)' });
  }
  if (plan.runner === 'aws' && plan.cdc.startPosition !== undefined && plan.source.engine === 'mysql' && mysqlStartKind(plan.cdc.startPosition) === 'gtid') {
    issues.push({ path: 'cdc.startPosition', value: plan.cdc.startPosition, message: 'DMS starts from a binlog file:offset (e.g. mysql-bin-changelog.000024:373), not a GTID set' });
  }
  if (plan.cdc.startPosition !== undefined && plan.source.engine === 'mysql' && !mysqlStartKind(plan.cdc.startPosition)) {
    issues.push({
      path: 'cdc.startPosition',
      value: plan.cdc.startPosition,
      message: 'expected a binlog file:offset such as binlog.000012:4567 (SHOW MASTER STATUS) or a GTID set (MariaDB 0-1-1234, MySQL 3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5) for a mysql source',
    });
  }
  if (plan.keys.length > 0 && (plan.mode === 'dump-restore' || plan.mode === 'cdc')) {
    issues.push({
      path: 'keys',
      message: `key redesign needs dbferry to create and load the tables (mode full-load or full-load-and-cdc); mode ${plan.mode} ${plan.mode === 'cdc' ? 'replicates into tables made some other way' : 'restores them as pg_dump wrote them'}`,
    });
  }
  const transformation = plan.tables.mappings?.rules.find((r) => r['rule-type'] === 'transformation');
  if (transformation && plan.mode === 'dump-restore') {
    issues.push({ path: 'tables.mappings', message: `transformation rules (rule ${String(transformation['rule-id'])}) need dbferry to create the tables; mode dump-restore restores them as pg_dump wrote them (use mode full-load)` });
  }
  return issues;
}
