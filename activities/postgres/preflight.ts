import type { Client } from 'pg';
import type { ActivityInput, EndpointInfo, Finding, PreflightReport } from '../../plan/migration-types';
import { qualifiedKey } from '../../plan/schema-model';
import { resolveEndpoint, withConnection, type PgEndpoint } from './connection';
import { withHeartbeat } from '../heartbeat';
import { existingTables } from './catalog';
import { createSchemaStatements } from './ddl';
import { introspectPostgres } from './introspect';
import { checkToolVersion, findPgTools } from './pg-tools';
import { tableSelector } from './selection';

/**
 * Checks both endpoints before anything is written: connectivity, versions, privileges, what
 * would be migrated and what is in the way. Blocking findings pause the migration.
 */
export async function preflightPostgres(input: ActivityInput & { withTargetSchema?: boolean }): Promise<PreflightReport> {
  return withHeartbeat(() => ({ step: 'preflight' }), () => preflight(input));
}

async function preflight(input: ActivityInput & { withTargetSchema?: boolean }): Promise<PreflightReport> {
  const { plan } = input;
  const [src, tgt] = await Promise.all([resolveEndpoint(plan, 'source'), resolveEndpoint(plan, 'target')]);
  const findings: Finding[] = [];

  const sourceSide = await withConnection(src, 'preflight', async (c) => {
    const info = await endpointInfo(c, src);
    const model = await introspectPostgres(c, tableSelector(plan));
    if (model.tables.length === 0) {
      findings.push({ severity: 'blocking', code: 'no-tables', message: `no source table matches the plan's table selection (tables.include / tables.exclude)` });
    }
    for (const t of await existingTables(c, model.tables, "NOT has_table_privilege(c.oid, 'SELECT')")) {
      findings.push({ severity: 'blocking', code: 'source-privilege', table: t, message: `${src.description}: no SELECT privilege on ${t}` });
    }
    for (const t of model.tables) {
      if (t.partitioned) {
        findings.push({
          severity: 'blocking',
          code: 'partitioned-table',
          table: qualifiedKey(t),
          message: `${qualifiedKey(t)} is partitioned: this version creates it as a plain, empty table and its partitions as tables of their own (skip this finding to accept that, or exclude the table)`,
        });
      }
      if (!t.primaryKey) {
        findings.push({ severity: 'warning', code: 'no-primary-key', table: qualifiedKey(t), message: `${qualifiedKey(t)} has no primary key` });
      }
    }
    const idle = await c.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM pg_stat_activity
        WHERE datname = current_database() AND state = 'idle in transaction' AND xact_start < now() - interval '5 minutes'`,
    );
    if (Number(idle.rows[0]?.n) > 0) {
      findings.push({ severity: 'warning', code: 'idle-in-transaction', message: `${src.description}: ${idle.rows[0]!.n} session(s) idle in transaction for over 5 minutes` });
    }
    for (const w of model.warnings) if (!/is partitioned/.test(w)) findings.push({ severity: 'warning', code: 'schema', message: w });
    return { info, model };
  });

  const targetInfo = await targetChecks(tgt, plan.target.createDatabase, sourceSide.model.tables, findings, plan.mode === 'dump-restore' ? 'dump-restore' : 'create-tables');
  if (plan.mode === 'dump-restore') {
    // Checked on the worker that runs preflight; the one that runs the step is checked again then.
    try {
      checkToolVersion(await findPgTools(), Number(sourceSide.info.version.split('.')[0]), src.description);
    } catch (err) {
      findings.push({ severity: 'blocking', code: 'pg-dump', message: (err as Error).message });
    }
  }
  if (Number(targetInfo.version.split('.')[0]) < Number(sourceSide.info.version.split('.')[0])) {
    findings.push({ severity: 'warning', code: 'target-older', message: `target PostgreSQL ${targetInfo.version} is older than the source's ${sourceSide.info.version}` });
  }
  return {
    source: sourceSide.info,
    target: targetInfo,
    findings,
    tables: sourceSide.model.tables.map((t) => ({ name: qualifiedKey(t), estimatedRows: t.estimatedRows, estimatedBytes: t.estimatedBytes })),
    targetSchema: input.withTargetSchema ? createSchemaStatements(sourceSide.model) : undefined,
  };
}

async function endpointInfo(c: Client, ep: PgEndpoint): Promise<EndpointInfo> {
  const { rows } = await c.query<{ v: string }>("SELECT current_setting('server_version') AS v");
  return { description: ep.description.replace(/^(source|target) /, ''), version: (rows[0]?.v ?? '').split(' ')[0]! };
}

async function targetChecks(
  tgt: PgEndpoint,
  createDatabase: boolean,
  tables: { schema: string; name: string }[],
  findings: Finding[],
  stoppingStep: string,
) {
  // The target database may not exist yet: look from the maintenance database first.
  const server = await withConnection(
    tgt,
    'preflight',
    async (admin) => {
      const info = await endpointInfo(admin, tgt);
      const { rows } = await admin.query<{ exists: boolean; can_create: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists,
                (SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user) AS can_create`,
        [tgt.database],
      );
      return { info, ...rows[0]! };
    },
    'postgres',
  );
  if (!server.exists && !createDatabase) {
    findings.push({ severity: 'blocking', code: 'target-database-missing', message: `${tgt.description}: database ${tgt.database} does not exist and target.createDatabase is false` });
  } else if (!server.exists && !server.can_create) {
    findings.push({ severity: 'blocking', code: 'target-privilege', message: `${tgt.description}: database ${tgt.database} does not exist and the target user may not create databases (CREATEDB)` });
  }
  if (!server.exists) return server.info;
  await withConnection(tgt, 'preflight', async (c) => {
    for (const t of await existingTables(c, tables)) {
      findings.push({ severity: 'warning', code: 'target-table-exists', table: t, message: `${tgt.description}: table ${t} already exists; ${stoppingStep} will stop on it` });
    }
  });
  return server.info;
}
