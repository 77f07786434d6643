/**
 * What binlog CDC needs from a MySQL/MariaDB source, checked before anything is written. dbferry
 * reads the binary log as a replica (`@vlasky/zongji`): rows must be logged whole (ROW format,
 * FULL images) with their column names (FULL row metadata), in events the reader can decode,
 * kept long enough for CDC to start where the load's read point was taken, and readable by the
 * user. `readCdcSettings` reads what the server says; `cdcFindings` is pure, so every server
 * flavour can be tested without one.
 */
import { createHash } from 'node:crypto';
import type { Connection } from 'mysql2/promise';
import type { Finding } from '../../plan/migration-types';

/** The server variables read; a server without one (MariaDB vs MySQL 5.7/8.0/8.4) leaves it out. */
export const CDC_VARIABLES = [
  'log_bin',
  'binlog_format',
  'binlog_row_image',
  'binlog_row_metadata',
  'server_id',
  'binlog_expire_logs_seconds',
  'expire_logs_days',
  // MySQL 8.0.29+: OFF means no automatic purge at all, whatever the two above say.
  'binlog_expire_logs_auto_purge',
  // MariaDB 11.4+: binary logs beyond this total size are purged whatever their age.
  'max_binlog_total_size',
  'binlog_transaction_compression',
  'binlog_row_value_options',
  'log_bin_compress',
  // Read for the reader and for reports; no finding: zongji follows file:offset positions under
  // any GTID mode and verifies CRC32 checksums or reads without them.
  'gtid_mode',
  'binlog_checksum',
  // Amazon RDS and Aurora install under /rdsdbbin/: they purge binary logs by their own setting.
  'basedir',
  // MySQL 8.0.2+: roles every user holds, which SHOW GRANTS does not expand.
  'mandatory_roles',
] as const;

export type CdcVariable = (typeof CDC_VARIABLES)[number];

export interface CdcSettings {
  /** SELECT VERSION(): `10.11.6-MariaDB-log`, `8.0.36`. */
  version: string;
  /** Global values as the server shows them (`ON`, `ROW`, `0.500000`), by lowercase name; absent when the server has no such variable. */
  variables: Partial<Record<CdcVariable, string>>;
  /** SHOW GRANTS lines of the connected user; undefined when they could not be read. */
  grants?: string[];
  /**
   * The grants include what the roles of a new session of the user grant (its default roles,
   * as the binlog connection will have them): MariaDB lists its current role's privileges, nested
   * ones too; MySQL 8 only with SHOW GRANTS … USING its current roles. A privilege missing from
   * such grants is missing; from others it may still come through a role.
   */
  rolesExpanded?: boolean;
  /**
   * Amazon RDS or Aurora: `binlog retention hours` (mysql.rds_show_configuration), null when it
   * is NULL (RDS keeps binary logs only as long as it needs them itself), absent when unreadable.
   */
  rds?: { binlogRetentionHours?: number | null };
}

/** How long a load is assumed to take when the caller does not say. */
const DEFAULT_LOAD_HOURS = 24;

export async function readCdcSettings(c: Connection): Promise<CdcSettings> {
  const [v] = await c.query('SELECT VERSION() AS version');
  const version = String((v as Array<{ version: string }>)[0]?.version ?? '');
  const variables = await readVariables(c);
  const settings: CdcSettings = { version, variables, ...(await readGrants(c, version)) };
  if (/\/rdsdbbin\//.test(variables.basedir ?? '')) settings.rds = await readRdsRetention(c);
  return settings;
}

async function readVariables(c: Connection): Promise<Partial<Record<CdcVariable, string>>> {
  const known = new Set<string>(CDC_VARIABLES);
  const out: Partial<Record<CdcVariable, string>> = {};
  try {
    const [rows] = await c.query({ sql: 'SHOW GLOBAL VARIABLES WHERE Variable_name IN (?)', values: [[...CDC_VARIABLES]] });
    for (const r of rows as Array<{ Variable_name: string; Value: unknown }>) {
      const name = r.Variable_name.toLowerCase();
      if (known.has(name)) out[name as CdcVariable] = r.Value === null ? '' : String(r.Value);
    }
    return out;
  } catch {
    // A server that refuses SHOW with WHERE (MySQL 5.7 without performance_schema's variables
    // tables, a proxy): one variable at a time, a missing one is an error of its own.
    for (const name of CDC_VARIABLES) {
      try {
        const [rows] = await c.query(`SELECT @@GLOBAL.${name} AS v`);
        const value = (rows as Array<{ v: unknown }>)[0]?.v;
        if (value !== undefined) out[name] = value === null ? '' : String(value);
      } catch {
        // ER_UNKNOWN_SYSTEM_VARIABLE: this server has no such setting.
      }
    }
    return out;
  }
}

async function showGrants(c: Connection, sql: string): Promise<string[]> {
  const [rows] = await c.query(sql);
  return (rows as Array<Record<string, unknown>>).map((g) => String(Object.values(g)[0] ?? ''));
}

/**
 * The user's grants with the privileges of the roles its sessions start with. This session has
 * the roles any new one has (dbferry never sets a role), the binlog connection's among them.
 */
async function readGrants(c: Connection, version: string): Promise<Pick<CdcSettings, 'grants' | 'rolesExpanded'>> {
  let grants: string[];
  try {
    grants = await showGrants(c, 'SHOW GRANTS');
  } catch {
    return {};
  }
  // MariaDB's SHOW GRANTS shows the current role's privileges; MySQL before 8.0 has no roles.
  if (/mariadb/i.test(version) || Number(version.split('.')[0]) < 8) return { grants, rolesExpanded: true };
  try {
    const [r] = await c.query('SELECT CURRENT_ROLE() AS roles');
    const roles = String((r as Array<{ roles: unknown }>)[0]?.roles ?? 'NONE');
    if (roles === 'NONE') return { grants, rolesExpanded: true };
    // CURRENT_ROLE() lists them quoted (`r`@`%`,`s`@`%`), as USING takes them.
    return { grants: await showGrants(c, `SHOW GRANTS FOR CURRENT_USER() USING ${roles}`), rolesExpanded: true };
  } catch {
    return { grants, rolesExpanded: false };
  }
}

/** RDS's own binlog purge setting; its procedure may be refused to a user other than the master user. */
async function readRdsRetention(c: Connection): Promise<NonNullable<CdcSettings['rds']>> {
  try {
    const [result] = await c.query('CALL mysql.rds_show_configuration');
    // A CALL answers with its result sets, then the status of the call.
    const sets = result as unknown[];
    const rows = (Array.isArray(sets[0]) ? sets[0] : sets) as Array<{ name?: string; value?: string | null }>;
    const row = rows.find((r) => r.name === 'binlog retention hours');
    if (!row) return {};
    if (row.value === null || row.value === undefined || row.value === '') return { binlogRetentionHours: null };
    const hours = Number(row.value);
    return Number.isFinite(hours) ? { binlogRetentionHours: hours } : {};
  } catch {
    return {};
  }
}

/**
 * A replica server_id for dbferry's binlog connection: a server refuses (or disconnects) a
 * second replica with the same id, so it must stay the same across restarts of one migration
 * (derived from the run id) and be unlike the small numbers DBAs give real servers and replicas.
 */
export function cdcServerId(runId: string): number {
  const h = createHash('sha256').update(runId).digest().readUInt32BE(0);
  return 1_000_000_000 + (h % 3_000_000_000);
}

interface Flavour {
  mariadb: boolean;
  major: number;
  minor: number;
  rds: boolean;
}

function flavour(s: CdcSettings): Flavour {
  const [major = 0, minor = 0] = s.version.split(/[.-]/).map(Number);
  return { mariadb: /mariadb/i.test(s.version), major, minor, rds: s.rds !== undefined };
}

/**
 * How to set a server variable lastingly. Variables with session scope are copied into each
 * session when it connects, so sessions already open go on logging the old way until they
 * reconnect: the message says so, or the first hours of CDC would still read the old format.
 */
function howToSet(f: Flavour, name: string, value: string, opts: { session?: boolean } = {}): string {
  const reconnect = opts.session ? '; sessions already connected keep the old value until they reconnect' : '';
  if (f.rds) return `set ${name} = ${value} in the DB parameter group (the DB cluster parameter group on Aurora)${reconnect}`;
  const persist = !f.mariadb && f.major >= 8
    ? `SET PERSIST ${name} = ${value}`
    : `SET GLOBAL ${name} = ${value}, and ${name} = ${value} under [mysqld] in my.cnf so that a restart keeps it`;
  return `${persist} (on a managed service, its parameter group)${reconnect}`;
}

/** What stands in the way of binlog CDC on this server, from what readCdcSettings read. */
export function cdcFindings(ep: { description: string }, s: CdcSettings, opts: { expectedLoadHours?: number } = {}): Finding[] {
  const out: Finding[] = [];
  const f = flavour(s);
  const v = s.variables;
  const upper = (name: CdcVariable) => v[name]?.trim().toUpperCase();
  // SHOW VARIABLES says ON; @@GLOBAL (the fallback) says 1.
  const on = (name: CdcVariable) => upper(name) === 'ON' || upper(name) === '1';
  const add = (severity: Finding['severity'], code: string, message: string) => out.push({ severity, code, message: `${ep.description}: ${message}` });

  if (v.log_bin === undefined) {
    add('warning', 'binlog-off', 'log_bin could not be read: CDC needs the binary log on (log_bin = ON)');
  } else if (!on('log_bin')) {
    add(
      'blocking',
      'binlog-off',
      `the binary log is off (log_bin = ${v.log_bin}); CDC reads changes from it: ${
        f.rds
          ? 'on Amazon RDS turn on automated backups (a backup retention period above 0); on Aurora set binlog_format in the DB cluster parameter group'
          : 'add log_bin = binlog (and a server_id) under [mysqld] in my.cnf and restart the server'
      }`,
    );
  }

  // A server without binlog_format (a MySQL that dropped the deprecated variable) logs rows only.
  const format = upper('binlog_format');
  if (format !== undefined && format !== 'ROW') {
    add(
      'blocking',
      'binlog-format',
      `binlog_format is ${v.binlog_format}; CDC needs ROW, the only format that logs the rows a statement changed: ${howToSet(f, 'binlog_format', 'ROW', { session: true })}`,
    );
  }

  // Before binlog_row_image existed (MySQL 5.6, MariaDB 10.1.6) rows were always logged whole.
  const image = upper('binlog_row_image');
  if (image !== undefined && image !== 'FULL') {
    add(
      'blocking',
      'binlog-row-image',
      `binlog_row_image is ${v.binlog_row_image}; CDC needs FULL: with less, updates and deletes log only some columns and the target row cannot be rewritten whole: ${howToSet(f, 'binlog_row_image', 'FULL', { session: true })}`,
    );
  }

  // Without FULL metadata the reader takes column names from information_schema as it is now:
  // rows written before an ALTER TABLE would land in the wrong columns, and ENUM and SET values
  // (logged as numbers) would be named from today's definition.
  const metadata = upper('binlog_row_metadata');
  if (metadata === undefined) {
    add(
      'warning',
      'binlog-row-metadata',
      `this server (${s.version}) has no binlog_row_metadata (MySQL 8.0.1 and MariaDB 10.5 added it), so the binary log does not name columns: CDC takes them from the current table definitions, and a row written before an ALTER TABLE on a migrated table is decoded against the new definition. Do not alter migrated tables while the migration runs`,
    );
  } else if (metadata !== 'FULL') {
    add(
      'blocking',
      'binlog-row-metadata',
      `binlog_row_metadata is ${v.binlog_row_metadata}; CDC needs FULL, so that each row comes with its column names as they were when it was written (otherwise rows written before an ALTER TABLE decode wrongly and ENUM/SET text is taken from the current definition): ${howToSet(f, 'binlog_row_metadata', 'FULL')}`,
    );
  }

  const serverId = v.server_id?.trim();
  if (serverId === '0') {
    add('blocking', 'server-id', `server_id is 0, and a server with server_id 0 refuses replica connections, which is how CDC reads the binary log: ${howToSet(f, 'server_id', '1')} (any id no other server of its replication topology uses)`);
  }

  // MySQL 8.0.20+ packs a whole transaction into one zstd-compressed event the reader cannot
  // open: its row changes would be lost.
  if (on('binlog_transaction_compression')) {
    add(
      'blocking',
      'binlog-compression',
      `binlog_transaction_compression is ON; the binlog reader cannot decode compressed transactions, and their changes would be lost: ${howToSet(f, 'binlog_transaction_compression', 'OFF', { session: true })}`,
    );
  }

  // Partial JSON updates log a diff against the previous document, which the reader cannot apply.
  if (upper('binlog_row_value_options')?.includes('PARTIAL_JSON')) {
    add(
      'blocking',
      'partial-json',
      `binlog_row_value_options is ${v.binlog_row_value_options}; the binlog reader cannot decode partial JSON updates, and those updates would be lost: ${howToSet(f, 'binlog_row_value_options', "''", { session: true })}`,
    );
  }

  // MariaDB's log_bin_compress deflates single events (not whole transactions): zongji 0.9.0
  // inflates them into ordinary row events (checked against MariaDB 10.11), so it only informs.
  if (on('log_bin_compress')) {
    add('info', 'mariadb-binlog-compression', 'log_bin_compress is ON: MariaDB compresses large binlog events, and the binlog reader decompresses them; nothing to change');
  }

  out.push(...grantFindings(ep, s, f));
  out.push(...retentionFindings(ep, s, f, opts.expectedLoadHours ?? DEFAULT_LOAD_HOURS));
  return out;
}

/** The privileges of SHOW GRANTS lines on *.* (by name, ALL within ALL [PRIVILEGES]), upper case. */
export function globalPrivileges(grants: string[]): Set<string> {
  const out = new Set<string>();
  for (const g of grants) {
    const m = /^GRANT\s+(.+?)\s+ON\s+\*\.\*\s+TO\s/i.exec(g.trim());
    if (!m) continue;
    // MySQL lists dynamic privileges without spaces after the commas.
    for (const p of m[1]!.split(',')) out.add(p.trim().replace(/\s+/g, ' ').toUpperCase());
  }
  if (out.has('ALL')) out.add('ALL PRIVILEGES');
  return out;
}

/** A SHOW GRANTS line granting roles (`GRANT \`r\`@\`%\` TO …`), not privileges: those have an ON. */
function grantsRole(line: string): boolean {
  const g = line.trim();
  return /^GRANT\s+`/i.test(g) || (/^GRANT\s/i.test(g) && !/\sON\s/i.test(g));
}

/**
 * REPLICATION SLAVE to read the binary log as a replica; REPLICATION CLIENT (MariaDB 10.5+:
 * BINLOG MONITOR) for SHOW MASTER STATUS, the binlog's end that CDC measures its lag against.
 * Roles are not followed here: a missing privilege blocks when the grants already hold what the
 * session's roles grant (rolesExpanded) or no role is in sight. Otherwise (MySQL grants naming a
 * role, or mandatory_roles, that could not be expanded) the privilege may come from a role, and
 * blocking a migration that would run is worse than a warning the binlog connection's own error
 * confirms or refutes.
 */
function grantFindings(ep: { description: string }, s: CdcSettings, f: Flavour): Finding[] {
  if (s.grants === undefined) {
    return [
      {
        severity: 'warning',
        code: 'replication-grant',
        message: `${ep.description}: SHOW GRANTS could not be read, so whether the user may read the binary log (REPLICATION SLAVE, REPLICATION CLIENT) is not known`,
      },
    ];
  }
  const privileges = globalPrivileges(s.grants);
  const has = (...names: string[]) => names.some((n) => privileges.has(n));
  const viaRole = s.rolesExpanded !== true && (s.grants.some(grantsRole) || (s.variables.mandatory_roles ?? '').trim() !== '');
  const severity = viaRole ? 'warning' : 'blocking';
  const unless = viaRole ? ' (unless one of its roles grants it: roles are not followed)' : '';
  const grantee = granteeOf(s.grants) ?? "'user'@'host'";
  const out: Finding[] = [];
  if (!has('REPLICATION SLAVE', 'REPLICATION REPLICA', 'ALL PRIVILEGES')) {
    out.push({
      severity,
      code: 'replication-grant',
      message: `${ep.description}: the user lacks REPLICATION SLAVE${f.mariadb ? ' (REPLICATION REPLICA)' : ''} on *.*${unless}, which reading the binary log as a replica needs: GRANT REPLICATION SLAVE ON *.* TO ${grantee}`,
    });
  }
  if (!has('REPLICATION CLIENT', 'BINLOG MONITOR', 'SUPER', 'ALL PRIVILEGES')) {
    const modern = f.mariadb && (f.major > 10 || (f.major === 10 && f.minor >= 5));
    const priv = modern ? 'BINLOG MONITOR' : 'REPLICATION CLIENT';
    out.push({
      severity,
      code: 'replication-client-grant',
      message: `${ep.description}: the user lacks ${modern ? 'BINLOG MONITOR (formerly REPLICATION CLIENT)' : 'REPLICATION CLIENT'} on *.*${unless}, which SHOW MASTER STATUS (MySQL 8.4: SHOW BINARY LOG STATUS) needs to read where the binary log ends: GRANT ${priv} ON *.* TO ${grantee}`,
    });
  }
  return out;
}

/** The account SHOW GRANTS is about, as it quotes it (for a GRANT the user can paste). */
function granteeOf(grants: string[]): string | undefined {
  for (const g of grants) {
    const m = /\sTO\s+(`(?:[^`]|``)*`@`(?:[^`]|``)*`|'(?:[^']|'')*'@'(?:[^']|'')*')/i.exec(g);
    if (m) return m[1];
  }
  return undefined;
}

/** How long binary logs are kept, and by which setting; seconds null: never purged by age. */
interface Retention {
  seconds: number | null;
  /** The settings it comes from, as the server shows them: `binlog_expire_logs_seconds = 43200, expire_logs_days = 0.500000`. */
  shown: string;
}

function retentionOf(s: CdcSettings, f: Flavour): Retention | undefined {
  const v = s.variables;
  if (f.rds) {
    const h = s.rds?.binlogRetentionHours;
    if (h === undefined) return undefined;
    // NULL: RDS keeps a binary log only until it has no use for it itself.
    return { seconds: h === null ? 0 : h * 3600, shown: `binlog retention hours = ${h === null ? 'NULL' : h} (mysql.rds_show_configuration)` };
  }
  const autoPurge = v.binlog_expire_logs_auto_purge?.trim().toUpperCase();
  if (autoPurge === 'OFF' || autoPurge === '0') {
    return { seconds: null, shown: 'binlog_expire_logs_auto_purge = OFF' };
  }
  const secs = Number(v.binlog_expire_logs_seconds ?? 0);
  const days = Number(v.expire_logs_days ?? 0);
  // MySQL 8.0 uses binlog_expire_logs_seconds when it is not 0, else expire_logs_days; MariaDB
  // 10.6+ keeps the two in step; MySQL 5.7 and MariaDB before 10.6 have only the days.
  const both = [
    v.binlog_expire_logs_seconds !== undefined ? `binlog_expire_logs_seconds = ${v.binlog_expire_logs_seconds}` : undefined,
    v.expire_logs_days !== undefined ? `expire_logs_days = ${v.expire_logs_days}` : undefined,
  ].filter((x) => x !== undefined);
  if (secs > 0) return { seconds: secs, shown: both.join(', ') };
  if (days > 0) return { seconds: days * 86_400, shown: both.join(', ') };
  return { seconds: null, shown: both.join(', ') || 'no expiry setting' };
}

function kept(seconds: number): string {
  if (seconds === 0) return 'only briefly';
  const h = seconds / 3600;
  return h >= 48 && Number.isInteger(h / 24) ? `${h / 24} days` : `${Number(h.toFixed(1))} h`;
}

/**
 * The load's read point is a binlog position, and CDC starts reading there once the load is
 * done: a binary log purged before then is gone, and the migration pauses and needs a reload.
 * The margin covers a load slower than expected and a paused migration or a worker outage in
 * between (half the load, at least 6 hours).
 */
function retentionFindings(ep: { description: string }, s: CdcSettings, f: Flavour, loadHours: number): Finding[] {
  const out: Finding[] = [];
  const neededHours = Math.ceil(loadHours + Math.max(6, loadHours / 2));
  const r = retentionOf(s, f);
  const risk = `the binlog position the load starts from may be purged before CDC reads it; the migration then pauses and needs a reload`;
  const days = Math.ceil(neededHours / 24);
  if (r === undefined) {
    out.push({
      severity: 'warning',
      code: 'binlog-retention',
      message: `${ep.description}: Amazon RDS's binlog retention hours could not be read (mysql.rds_show_configuration); unless it is set, RDS purges binary logs soon after they are written and ${risk}: CALL mysql.rds_set_configuration('binlog retention hours', ${days * 24})`,
    });
    return out;
  }
  if (r.seconds === null) {
    out.push({ severity: 'info', code: 'binlog-retention-info', message: `${ep.description}: binary logs are not purged by age (${r.shown})` });
  } else {
    out.push({ severity: 'info', code: 'binlog-retention-info', message: `${ep.description}: binary logs are kept ${kept(r.seconds)} (${r.shown})` });
    if (r.seconds < neededHours * 3600) {
      const fix = f.rds
        ? `CALL mysql.rds_set_configuration('binlog retention hours', ${days * 24})`
        : s.variables.binlog_expire_logs_seconds !== undefined
          ? howToSet(f, 'binlog_expire_logs_seconds', String(days * 86_400))
          : howToSet(f, 'expire_logs_days', String(days));
      out.push({
        severity: 'warning',
        code: 'binlog-retention',
        message: `${ep.description}: binary logs are kept ${kept(r.seconds)} (${r.shown}), less than the ${neededHours} h a ${loadHours} h load and a margin may take: ${risk}. Keep them ${days === 1 ? '1 day' : `${days} days`} or more: ${fix}`,
      });
    }
  }
  const limit = Number(s.variables.max_binlog_total_size ?? 0);
  if (limit > 0) {
    out.push({
      severity: 'warning',
      code: 'binlog-size-limit',
      message: `${ep.description}: max_binlog_total_size is ${s.variables.max_binlog_total_size} bytes: binary logs beyond it are purged whatever their age, so heavy writes during the load can purge the position CDC starts from (the migration then pauses and needs a reload): ${howToSet(f, 'max_binlog_total_size', '0')}, or raise it`,
    });
  }
  return out;
}
