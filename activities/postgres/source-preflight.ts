import type { Client } from 'pg';
import type { EndpointInfo, Finding } from '../../plan/migration-types';
import { grantsAsked, type Plan } from '../../plan/plan-schema';
import { qualifiedKey, type SchemaModel, type TableModel } from '../../plan/schema-model';
import { existingTables } from '../pg/catalog';
import { endpointInfo } from '../pg/endpoint-info';
import { withConnection, type PgEndpoint } from '../pg/connection';
import { introspectPostgres } from './introspect';
import { checkToolVersion, findPgTools } from './pg-tools';
import { dumpSchemaObjects } from './schema-objects';
import { tableSelector } from './selection';

/**
 * The source side of preflight: version, the selected tables, privileges, sessions in the way
 * and, with CDC, what logical replication needs. Findings only: nothing is written.
 */
export async function preflightPgSource(src: PgEndpoint, plan: Plan): Promise<{ info: EndpointInfo; model: SchemaModel; findings: Finding[] }> {
  const withCdc = plan.mode === 'full-load-and-cdc' || plan.mode === 'cdc';
  const findings: Finding[] = [];
  const side = await withConnection(src, 'preflight', async (c) => {
    const info = await endpointInfo(c, src);
    const model = await introspectPostgres(c, tableSelector(plan));
    if (model.tables.length === 0) {
      findings.push({ severity: 'blocking', code: 'no-tables', message: `no source table matches the plan's table selection (tables.include / tables.exclude)` });
    }
    for (const t of await existingTables(c, model.tables, "NOT has_table_privilege(c.oid, 'SELECT')")) {
      findings.push({ severity: 'blocking', code: 'source-privilege', table: t, message: `${src.description}: no SELECT privilege on ${t}` });
    }
    for (const t of model.tables) {
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
    for (const w of model.warnings) findings.push({ severity: 'warning', code: 'schema', message: w });
    if (withCdc) findings.push(...(await cdcSourceFindings(c, src, plan, model.tables)));
    return { info, model };
  });
  if (plan.mode === 'dump-restore') {
    // Checked on the worker that runs preflight; the one that runs the step is checked again then.
    try {
      checkToolVersion(await findPgTools(), Number(side.info.version.split('.')[0]), src.description);
    } catch (err) {
      findings.push({ severity: 'blocking', code: 'pg-dump', message: (err as Error).message });
    }
  }
  if (plan.mode !== 'cdc') findings.push(...(await schemaObjectFindings(src, plan, side.model)));
  return { info: side.info, model: side.model, findings };
}

/**
 * The schema objects that will not be carried, each named (never a silent drop): those that
 * need a table the plan does not migrate, and what acts on the whole database (event triggers,
 * publications, subscriptions), which is never copied.
 */
async function schemaObjectFindings(src: PgEndpoint, plan: Plan, model: SchemaModel): Promise<Finding[]> {
  const out: Finding[] = [];
  try {
    const dumped = await dumpSchemaObjects(src, plan.source.tls, model.schemas, tableSelector(plan), { grants: grantsAsked(plan) });
    for (const message of dumped.leftOut) out.push({ severity: 'warning', code: 'schema-object', message: `${src.description}: ${message}` });
  } catch (err) {
    const hint = (err as { details?: Array<{ hint?: string }> }).details?.[0]?.hint;
    out.push({ severity: 'blocking', code: 'schema-objects', message: `${(err as Error).message}${hint ? `: ${hint}` : ''}` });
  }
  // Each read alone: a user that may not read pg_subscription still learns of the rest.
  const whole = await withConnection(src, 'preflight', async (c) => {
    const names: string[] = [];
    for (const sql of [
      `SELECT format('event trigger %I', evtname) AS what FROM pg_event_trigger ORDER BY 1`,
      `SELECT format('publication %I', pubname) AS what FROM pg_publication WHERE pubname <> $1 ORDER BY 1`,
      `SELECT format('subscription %I', subname) AS what FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 1`,
    ]) {
      const r = await c.query<{ what: string }>(sql, sql.includes('$1') ? [plan.cdc.publication] : []).catch(() => undefined);
      names.push(...(r?.rows.map((x) => x.what) ?? []));
    }
    return names;
  }).catch(() => [] as string[]);
  for (const what of whole) {
    out.push({ severity: 'warning', code: 'schema-object', message: `${src.description}: ${what} is not copied (it acts on the whole database): create it on the target if the application needs it` });
  }
  return out;
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
