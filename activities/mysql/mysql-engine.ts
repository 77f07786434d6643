import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import type { EndpointInfo, Finding, MigrationRef } from '../../plan/migration-types';
import type { Plan } from '../../plan/plan-schema';
import { qualifiedKey, type SchemaModel, type SequenceModel, type TableModel } from '../../plan/schema-model';
import type { TableExtent } from '../../plan/load-chunks';
import { compileSelection, selectsByDefault } from '../../plan/table-selection';
import type { Connection } from 'mysql2/promise';
import type { ChangeSource, HeldReadPoint, SourceEngine } from '../engine';
import { mysqlFailure, resolveMysqlEndpoint, withMysql, type MysqlEndpoint } from './connection';
import { quoteMysql } from '../cross-engine/canonical';
import { introspectMysql, type MysqlSchema } from './introspect';
import { cdcFindings, cdcServerId, readCdcSettings } from './cdc-preflight';
import { MysqlChanges } from './mysql-changes';
import { openMysqlReader } from './reader';
import { holdMysqlReadPoint, joinMysqlReadPoint } from './read-point';

/** The MySQL/MariaDB source engine: consistent snapshots, rows converted into COPY text, canonical checksums. */
export async function mysqlEngine(plan: Plan): Promise<SourceEngine> {
  return new MysqlEngine(plan, await resolveMysqlEndpoint(plan));
}

class MysqlEngine implements SourceEngine {
  readonly name = 'mysql' as const;
  readonly description: string;
  readonly cdc: ChangeSource;

  constructor(
    private readonly plan: Plan,
    private readonly ep: MysqlEndpoint,
  ) {
    this.description = ep.description;
    this.cdc = new MysqlChanges(ep, cdcServerId(plan.name));
  }

  failure(err: unknown, ctx: { table?: string; doing: string }) {
    return mysqlFailure(err, this.ep, ctx);
  }

  /**
   * The plan's selection over `database.table` names. Without include patterns (or mappings),
   * only the database the URL names is migrated: a server's other databases are not the
   * migration's unless the plan says so.
   */
  private selector(): (schema: string, table: string) => boolean {
    const sel = compileSelection(this.plan.tables);
    // (The plan fills in `%.%` when include is left out: that is the default, not a choice.)
    const byDefault = selectsByDefault(this.plan.tables);
    return (schema, table) => (!byDefault || schema === this.ep.database) && sel.matches(schema, table);
  }

  private schema(): Promise<MysqlSchema> {
    return withMysql(this.ep, 'introspect', (c) => introspectMysql(c, this.selector()));
  }

  async preflight(opts: { cdc: boolean }): Promise<{ info: EndpointInfo; model: SchemaModel; findings: Finding[] }> {
    const { ep } = this;
    return withMysql(ep, 'preflight', async (c) => {
      const [v] = await c.query('SELECT VERSION() AS version, @@GLOBAL.sql_mode AS sql_mode');
      const row = (v as Array<{ version: string; sql_mode: string }>)[0]!;
      const { model, findings } = await introspectMysql(c, this.selector());
      findings.push(...serverFindings(ep, row.version, row.sql_mode));
      findings.push(...grantFindings(ep, await readGrants(c)));
      if (model.tables.length === 0) {
        findings.push({
          severity: 'blocking',
          code: 'no-tables',
          message: `no source table matches the plan's table selection (database ${ep.database}, or tables.include as database.table patterns)`,
        });
      }
      for (const t of model.tables) {
        try {
          await c.query(`SELECT 1 FROM ${quoteMysql(t.schema)}.${quoteMysql(t.name)} LIMIT 0`);
        } catch (err) {
          findings.push({ severity: 'blocking', code: 'source-privilege', table: `${t.schema}.${t.name}`, message: mysqlFailure(err, ep, { doing: `reading ${t.schema}.${t.name}` }).message });
        }
      }
      if (opts.cdc) {
        findings.push(...cdcFindings(ep, await readCdcSettings(c)));
        // Row images are FULL, so a change can find a keyless row by all its values; of identical
        // rows it changes one, which is the same rows, but nothing tells such rows apart: only
        // when the operator says so (cdc.keylessTables: whole-row).
        const wholeRow = this.plan.cdc.keylessTables === 'whole-row';
        for (const t of model.tables.filter((x) => !x.primaryKey)) {
          findings.push(
            wholeRow
              ? { severity: 'info', code: 'cdc-whole-row', table: qualifiedKey(t), message: `${qualifiedKey(t)} has no primary key: CDC finds its rows by all their values (cdc.keylessTables: whole-row)` }
              : {
                  severity: 'blocking',
                  code: 'cdc-no-primary-key',
                  table: qualifiedKey(t),
                  message: `${qualifiedKey(t)} has no primary key: binlog CDC applies changes by key (add a primary key on the source, leave the table out with tables.exclude, or accept matching by the whole row with cdc.keylessTables: whole-row)`,
                },
          );
        }
      }
      return { info: { description: ep.description, version: row.version }, model, findings };
    });
  }

  async introspect(): Promise<SchemaModel> {
    return (await this.schema()).model;
  }

  /**
   * Sizes for chunking (`load.chunkRows`): InnoDB's row estimate and data length. Only tables
   * whose primary key is integers are cut into key ranges: their order is the same on both
   * engines (a text key's collation is not), and the ranges are also checked on the target.
   * No table is cut when the user cannot take the shared read point (no RELOAD): chunks read in
   * snapshots of their own would hold a state that never existed.
   */
  async extents(tables: TableModel[]): Promise<Map<TableModel, TableExtent>> {
    const out = new Map<TableModel, TableExtent>();
    const keyed = tables.filter(integerKeyed);
    if (keyed.length === 0) return out;
    return withMysql(this.ep, 'table sizes', async (c) => {
      if (grantFindings(this.ep, await readGrants(c)).length > 0) return out;
      const [rows] = await c.query({
        sql: `SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, CAST(TABLE_ROWS AS CHAR) AS n, CAST(DATA_LENGTH AS CHAR) AS bytes
                FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (?)`,
        values: [[...new Set(keyed.map((t) => t.schema))]],
      });
      const sizes = new Map((rows as Array<{ s: string; t: string; n: string | null; bytes: string | null }>).map((r) => [`${r.s}.${r.t}`, r]));
      for (const t of keyed) {
        const r = sizes.get(`${t.schema}.${t.name}`);
        if (r) out.set(t, { pages: 0, reltuples: Number(r.n ?? 0), bytes: Number(r.bytes ?? 0) });
      }
      return out;
    });
  }

  /** Every step-th key in order (one scan of the primary key), about 16 per chunk wanted. */
  async sampleKeys(table: TableModel, extent: TableExtent, chunks: number): Promise<string[][]> {
    const cols = (table.primaryKey?.columns ?? []).map(quoteMysql);
    const step = Math.max(1, Math.floor(extent.reltuples / (chunks * 16)));
    return withMysql(this.ep, `sampling the keys of ${table.schema}.${table.name}`, async (c) => {
      // ROW_NUMBER needs MariaDB 10.2 or MySQL 8; without it (MySQL 5.7) the table stays whole.
      const [rows] = await c.query({
        sql: `SELECT ${cols.map((k, i) => `CAST(${k} AS CHAR) AS k${i}`).join(', ')}
                FROM (SELECT ${cols.join(', ')}, ROW_NUMBER() OVER (ORDER BY ${cols.join(', ')}) AS dbferry_rn
                        FROM ${quoteMysql(table.schema)}.${quoteMysql(table.name)}) AS keys_in_order
               WHERE dbferry_rn % ${step} = 0 ORDER BY dbferry_rn`,
        rowsAsArray: true,
      }).catch((err: unknown) => {
        if ((err as { code?: string }).code === 'ER_PARSE_ERROR') return [[]];
        throw err;
      });
      return rows as string[][];
    });
  }

  /** The load's read point: snapshots for every loader at one binlog position (read-point.ts). */
  holdReadPoint(): Promise<HeldReadPoint> {
    return holdMysqlReadPoint(this.ep, this.plan.load.parallel);
  }

  joinReadPoint(token: string) {
    return joinMysqlReadPoint(this.ep, token);
  }

  openReader() {
    return openMysqlReader(this.ep, 'validate');
  }

  /** AUTO_INCREMENT counters: the identity hands out the next value the source would (never below the column's maximum). */
  async sequenceStates(sequences: SequenceModel[]): Promise<SequenceModel[]> {
    if (sequences.length === 0) return [];
    return withMysql(this.ep, 'sequences', async (c) => {
      // MySQL 8 caches information_schema statistics (AUTO_INCREMENT among them) for a day.
      await c.query('SET SESSION information_schema_stats_expiry = 0').catch(() => undefined);
      const out: SequenceModel[] = [];
      for (const s of sequences) {
        if (!s.ownedBy) {
          out.push(s);
          continue;
        }
        const { table, column } = s.ownedBy;
        const [r] = await c.query({
          sql: `SELECT CAST(AUTO_INCREMENT AS CHAR) AS next_value FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`,
          values: [table.schema, table.name],
        });
        const [m] = await c.query(`SELECT CAST(MAX(${quoteMysql(column)}) AS CHAR) AS max FROM ${quoteMysql(table.schema)}.${quoteMysql(table.name)}`);
        const next = BigInt((r as Array<{ next_value: string | null }>)[0]?.next_value ?? '1');
        const max = BigInt((m as Array<{ max: string | null }>)[0]?.max ?? '0');
        const last = next - 1n > max ? next - 1n : max;
        out.push({ ...s, lastValue: last > 0n ? last.toString() : null, isCalled: last > 0n });
      }
      return out;
    });
  }
}

async function readGrants(c: Connection): Promise<string[]> {
  const [grants] = await c.query('SHOW GRANTS');
  return (grants as Array<Record<string, string>>).map((g) => Object.values(g)[0] ?? '');
}

/** A table whose primary key is integers only: it may be cut into key ranges. */
function integerKeyed(t: TableModel): boolean {
  const key = t.primaryKey?.columns ?? [];
  return key.length > 0 && key.every((k) => t.columns.find((c) => c.name === k)?.conversion === 'integer');
}

/** What the server's version and settings mean for the migration (findings, never blocking). */
export function serverFindings(ep: MysqlEndpoint, version: string, sqlMode: string): Finding[] {
  const out: Finding[] = [];
  const [major = 0, minor = 0] = version.split(/[.-]/).map(Number);
  const mariadb = /mariadb/i.test(version);
  if (mariadb ? major < 10 || (major === 10 && minor < 2) : major < 5 || (major === 5 && minor < 7)) {
    out.push({ severity: 'warning', code: 'old-server', message: `${ep.description}: ${version} is older than dbferry supports (MariaDB 10.2, MySQL 5.7): check constraints and JSON may not be read` });
  }
  if (!mariadb) {
    out.push({ severity: 'info', code: 'untested-server', message: `${ep.description}: dbferry's tests run on MariaDB 10.11; MySQL ${version} is not among them` });
  }
  const modes = new Set(sqlMode.toUpperCase().split(','));
  if (!modes.has('NO_ZERO_DATE') || !modes.has('NO_ZERO_IN_DATE')) {
    out.push({
      severity: 'info',
      code: 'zero-dates',
      message: `${ep.description}: sql_mode (${sqlMode || 'empty'}) lets the server store zero and invalid dates; PostgreSQL has none, so the load writes NULL for them and counts them per table in status and the report`,
    });
  }
  return out;
}

/**
 * One read point for every table needs FLUSH TABLES WITH READ LOCK, which needs RELOAD (read
 * from SHOW GRANTS; privileges through roles are not followed, so this only warns).
 */
export function grantFindings(ep: MysqlEndpoint, grants: string[]): Finding[] {
  // RELOAD is global: granted on *.*, by name or within ALL PRIVILEGES.
  const reload = grants.some((g) => {
    const m = /^GRANT (.+?) ON \*\.\* TO /i.exec(g.trim());
    return m !== null && /(^|,\s*)(RELOAD|ALL PRIVILEGES|ALL)(\s*,|$)/i.test(m[1]!);
  });
  if (reload) return [];
  return [
    {
      severity: 'warning',
      code: 'no-reload',
      message: `${ep.description}: the user seems to lack the RELOAD privilege, which the load needs for one read point for every table (FLUSH TABLES WITH READ LOCK, held for milliseconds): without it each table is read in its own snapshot, consistent in itself but not with the others while the source is written`,
    },
  ];
}
