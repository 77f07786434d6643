import type { Client } from 'pg';
import type { ActivityInput, EndpointInfo, Finding, PreflightReport } from '../../plan/migration-types';
import type { Plan } from '../../plan/plan-schema';
import { qualifiedKey, type TableModel } from '../../plan/schema-model';
import { resolveEndpoint, withConnection, type PgEndpoint } from '../pg/connection';
import { withHeartbeat } from '../heartbeat';
import { postAlert } from '../alerts/webhook';
import { existingTables } from '../pg/catalog';
import { createSchemaStatements } from '../target/ddl';
import { introspectPostgres } from '../postgres/introspect';
import { checkToolVersion, findPgTools } from '../postgres/pg-tools';
import { tableSelector } from '../postgres/selection';

/**
 * Checks both endpoints before anything is written: connectivity, versions, privileges, what
 * would be migrated and what is in the way. Blocking findings pause the migration.
 */
export async function preflightPostgres(input: ActivityInput & { withTargetSchema?: boolean }): Promise<PreflightReport> {
  return withHeartbeat(() => ({ step: 'preflight' }), () => preflight(input));
}

async function preflight(input: ActivityInput & { withTargetSchema?: boolean }): Promise<PreflightReport> {
  const { plan } = input;
  const withCdc = plan.mode === 'full-load-and-cdc' || plan.mode === 'cdc';
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
      // With CDC, cdcSourceFindings decides (replica identity FULL makes a keyless table usable).
      if (!t.primaryKey && !withCdc) {
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
    if (withCdc) findings.push(...(await cdcSourceFindings(c, src, plan, model.tables)));
    return { info, model };
  });

  const targetInfo = await targetChecks(tgt, plan.target.createDatabase, sourceSide.model.tables, findings, plan.mode === 'dump-restore' ? 'dump-restore' : plan.mode === 'cdc' ? undefined : 'create-tables');
  if (plan.mode === 'dump-restore') {
    // Checked on the worker that runs preflight; the one that runs the step is checked again then.
    try {
      checkToolVersion(await findPgTools(), Number(sourceSide.info.version.split('.')[0]), src.description);
    } catch (err) {
      findings.push({ severity: 'blocking', code: 'pg-dump', message: (err as Error).message });
    }
  }
  if (plan.alerts?.webhook) {
    // A warning, not a block: a dead receiver must not hold a migration up (missed alerts show in status).
    try {
      await postAlert(plan, { kind: 'check', text: `dbferry migration *${plan.name}*: preflight check; this migration's alerts arrive here`, at: new Date().toISOString() });
    } catch (err) {
      findings.push({ severity: 'warning', code: 'alert-webhook', message: `${(err as Error).message}: alerts of this migration would be missed (fix alerts.webhook, or skip this finding)` });
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
  /** The step an existing table stops; undefined in mode cdc, where the tables must exist. */
  stoppingStep: string | undefined,
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
    const existing = await existingTables(c, tables);
    if (stoppingStep === undefined) {
      const present = new Set(existing);
      for (const t of tables.map(qualifiedKey).filter((k) => !present.has(k))) {
        findings.push({ severity: 'blocking', code: 'target-table-missing', table: t, message: `${tgt.description}: table ${t} does not exist; mode cdc applies changes to tables loaded beforehand` });
      }
      return;
    }
    for (const t of existing) {
      findings.push({ severity: 'warning', code: 'target-table-exists', table: t, message: `${tgt.description}: table ${t} already exists; ${stoppingStep} will stop on it` });
    }
  });
  return server.info;
}

/**
 * What logical replication needs from the source: wal_level, the privilege, a free slot and
 * sender, tables whose changes can be applied by key, and no old transaction that would keep
 * the slot's creation waiting.
 */
async function cdcSourceFindings(c: Client, src: PgEndpoint, plan: Plan, tables: TableModel[]): Promise<Finding[]> {
  const out: Finding[] = [];
  const block = (code: string, message: string, table?: string) => out.push({ severity: 'blocking', code, message: `${src.description}: ${message}`, ...(table ? { table } : {}) });
  const r = await c.query<{
    wal_level: string;
    can_replicate: boolean;
    max_slots: number;
    slots: number;
    own_slot: boolean;
    max_senders: number;
    senders: number;
    keep_size: string;
    publication_exists: boolean;
  }>(
    `SELECT current_setting('wal_level') AS wal_level,
            (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)
              OR pg_has_role(current_user, (SELECT oid FROM pg_roles WHERE rolname = 'rds_replication'), 'MEMBER') AS can_replicate,
            current_setting('max_replication_slots')::int AS max_slots,
            (SELECT count(*) FROM pg_replication_slots)::int AS slots,
            EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1) AS own_slot,
            current_setting('max_wal_senders')::int AS max_senders,
            (SELECT count(*) FROM pg_stat_replication)::int AS senders,
            current_setting('max_slot_wal_keep_size') AS keep_size,
            EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $2) AS publication_exists`,
    [plan.cdc.slot, plan.cdc.publication],
  );
  const x = r.rows[0]!;
  if (x.wal_level !== 'logical') block('wal-level', `wal_level is ${x.wal_level}; CDC needs wal_level = logical (set it and restart the server)`);
  if (!x.can_replicate) block('replication-privilege', 'the source user lacks the REPLICATION attribute (ALTER ROLE … REPLICATION; on RDS: GRANT rds_replication)');
  if (!x.own_slot && x.slots >= x.max_slots) block('no-free-slot', `all ${x.max_slots} replication slots are in use (max_replication_slots); drop an unused one or raise the setting`);
  // The load's snapshot holder and then the applier each take a WAL sender.
  if (x.max_senders - x.senders < 1) block('no-free-sender', `all ${x.max_senders} WAL senders are busy (max_wal_senders)`);
  if (x.keep_size !== '-1') {
    out.push({ severity: 'info', code: 'slot-wal-limit', message: `${src.description}: max_slot_wal_keep_size is ${x.keep_size}: a slot further behind than that is invalidated, and CDC must start over` });
  }
  const ident = await c.query<{ schema: string; name: string; ident: string; owned: boolean }>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relreplident::text AS ident, pg_has_role(c.relowner, 'USAGE') AS owned
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  const keyed = new Set(tables.filter((t) => t.primaryKey || t.partitioned).map(qualifiedKey));
  for (const t of ident.rows) {
    if (!keyed.has(qualifiedKey(t))) {
      if (t.ident === 'f') {
        out.push({ severity: 'warning', code: 'no-primary-key', table: qualifiedKey(t), message: `${qualifiedKey(t)} has no primary key: CDC applies its changes by whole-row match (REPLICA IDENTITY FULL), slower than by key` });
      } else {
        block('no-primary-key', `${qualifiedKey(t)} has no primary key: CDC cannot apply its updates and deletes (add a primary key, set REPLICA IDENTITY FULL, or exclude the table)`, qualifiedKey(t));
      }
    } else if (t.ident === 'n' || t.ident === 'i') {
      block('replica-identity', `${qualifiedKey(t)} has REPLICA IDENTITY ${t.ident === 'n' ? 'NOTHING' : 'USING INDEX'}: CDC applies changes by primary key (ALTER TABLE … REPLICA IDENTITY DEFAULT)`, qualifiedKey(t));
    }
  }
  const notOwned = ident.rows.filter((t) => !t.owned);
  if (!x.publication_exists && notOwned.length > 0) {
    block(
      'publication-privilege',
      `the source user does not own ${notOwned.slice(0, 5).map(qualifiedKey).join(', ')}${notOwned.length > 5 ? ` and ${notOwned.length - 5} more` : ''}, so it cannot create publication ${plan.cdc.publication} (create it as the owner and name it in cdc.publication)`,
      qualifiedKey(notOwned[0]!),
    );
  }
  const old = await c.query<{ pid: number; state: string; age: string }>(
    `SELECT pid, state, date_trunc('second', now() - xact_start)::text AS age FROM pg_stat_activity
      WHERE xact_start < now() - interval '5 minutes' AND pid <> pg_backend_pid() AND backend_type = 'client backend' ORDER BY xact_start LIMIT 5`,
  );
  if (old.rows.length > 0 && !x.own_slot) {
    out.push({
      severity: 'warning',
      code: 'long-transaction',
      message: `${src.description}: transactions open for over 5 minutes (${old.rows.map((o) => `pid ${o.pid} ${o.state} for ${o.age}`).join(', ')}): creating the replication slot waits until they end`,
    });
  }
  return out;
}
