/**
 * MySQL's spatial columns on the target: PostGIS `geometry` where the target database has
 * PostGIS or dbferry may create it there, else the portable bytea form (cross-engine/spatial.ts).
 * create-tables decides once, before it records the model, so the load, the checksums and
 * validation all read the column's real type from the model; preflight says beforehand which
 * it will be and, for bytea, what would give PostGIS instead.
 */
import type { Client } from 'pg';
import type { Finding } from '../../plan/migration-types';
import { qualifiedKey, type ColumnModel, type SchemaModel, type TableModel } from '../../plan/schema-model';
import { quoteIdent } from '../../plan/sql-names';
import { POSTGIS_MAX_SRID, postgisType } from '../cross-engine/spatial';

export interface PostgisOnTarget {
  /** Installed in the connected database: its schema and version. */
  installed?: { schema: string; version: string };
  /** The version the server would install (its package is there), when it is. */
  available?: string;
  /** The connected user is a superuser. */
  superuser: boolean;
  /** The server's packager marked PostGIS trusted: whoever may create in a database may create it there. */
  trusted: boolean;
  /** The connected user may create in the connected database. */
  createsInDatabase: boolean;
  user: string;
}

/**
 * Whether CREATE EXTENSION postgis would be allowed: in the connected database, or (`newDatabase`)
 * in one create-database makes, whose owner may create in it.
 */
export function mayCreatePostgis(state: PostgisOnTarget, newDatabase = false): boolean {
  return state.superuser || (state.trusted && (newDatabase || state.createsInDatabase));
}

/** What the connected database and its server offer. */
export async function postgisOnTarget(c: Client): Promise<PostgisOnTarget> {
  // PostGIS's own packages do not mark it trusted: a superuser creates it.
  const { rows } = await c.query<{ schema: string | null; version: string | null; available: string | null; superuser: boolean; trusted: boolean; creates: boolean; user: string }>(
    `SELECT n.nspname AS schema, e.extversion AS version,
            (SELECT a.default_version FROM pg_available_extensions a WHERE a.name = 'postgis') AS available,
            coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user), false) AS superuser,
            coalesce((SELECT v.trusted FROM pg_available_extension_versions v
                       JOIN pg_available_extensions a ON a.name = v.name AND a.default_version = v.version
                      WHERE v.name = 'postgis'), false) AS trusted,
            has_database_privilege(current_database(), 'CREATE') AS creates,
            current_user AS user
       FROM (SELECT 1) AS one
       LEFT JOIN pg_extension e ON e.extname = 'postgis'
       LEFT JOIN pg_namespace n ON n.oid = e.extnamespace`,
  );
  const r = rows[0]!;
  return {
    ...(r.schema !== null && r.version !== null ? { installed: { schema: r.schema, version: r.version } } : {}),
    ...(r.available !== null ? { available: r.available } : {}),
    superuser: r.superuser,
    trusted: r.trusted,
    createsInDatabase: r.creates,
    user: r.user,
  };
}

interface SpatialColumn {
  table: TableModel;
  column: ColumnModel;
}

/** The model's MySQL spatial columns still in the portable form. */
export function spatialColumns(tables: TableModel[]): SpatialColumn[] {
  return tables.flatMap((table) => table.columns.filter((column) => column.conversion === 'geometry' && column.type === 'bytea').map((column) => ({ table, column })));
}

/**
 * The model with its spatial columns as PostGIS geometry, when the database has PostGIS or it
 * can be created (CREATE EXTENSION IF NOT EXISTS postgis, committed on its own: a refusal
 * leaves the columns bytea and nothing else changed). The extension is added to the model's
 * extensions, so the model says what its tables need. `created` tells whether this call made it.
 */
export async function withPostgisTypes(c: Client, model: SchemaModel): Promise<{ model: SchemaModel; created: boolean }> {
  if (spatialColumns(model.tables).length === 0) return { model, created: false };
  let state = await postgisOnTarget(c);
  let created = false;
  if (!state.installed && state.available !== undefined) {
    // Tried even when the catalog says the user may not: a managed server (RDS's
    // rds_superuser) lets some users create it that are no superuser.
    try {
      await c.query(`CREATE EXTENSION IF NOT EXISTS ${quoteIdent('postgis')}`);
      state = await postgisOnTarget(c);
      created = state.installed !== undefined;
    } catch {
      // Stays bytea: preflight named the remedy.
    }
  }
  const schema = state.installed?.schema;
  if (schema === undefined) return { model, created: false };
  const tables = model.tables.map((t) => {
    if (!t.columns.some((col) => col.conversion === 'geometry' && col.type === 'bytea')) return t;
    return {
      ...t,
      columns: t.columns.map((col) => {
        if (col.conversion !== 'geometry' || col.type !== 'bytea') return col;
        const type = postgisType(col.sourceType ?? 'geometry', schema);
        return type === undefined ? col : { ...col, type };
      }),
    };
  });
  const extensions = model.extensions.some((e) => e.name === 'postgis') ? model.extensions : [...model.extensions, { name: 'postgis', schema }];
  return { model: { ...model, tables, extensions }, created };
}

const PORTABLE = "bytea in MySQL's own form (the SRID, 4 bytes little-endian, then the WKB)";

/**
 * Preflight: which form the spatial columns of `tables` will take on this target, and for bytea
 * what would make them PostGIS geometry. `database`: the target database, `exists` false when
 * create-database will make it (`state` then read on the server's maintenance database).
 */
export function postgisFindings(tables: TableModel[], state: PostgisOnTarget, target: { description: string; database: string; version: string; exists: boolean }): Finding[] {
  const columns = spatialColumns(tables);
  if (columns.length === 0) return [];
  const name = (s: SpatialColumn) => `${qualifiedKey(s.table)}.${s.column.name}`;
  const list = (cols: SpatialColumn[]) => {
    const shown = cols.slice(0, 10).map((s) => `${name(s)} (${s.column.sourceType ?? 'geometry'})`).join(', ');
    return cols.length > 10 ? `${shown} and ${cols.length - 10} more` : shown;
  };
  const findings: Finding[] = [];
  // A SRID PostGIS cannot hold keeps a column bytea whatever the target has.
  const tooLarge = columns.filter((s) => postgisType(s.column.sourceType ?? 'geometry', 'public') === undefined);
  if (tooLarge.length > 0) {
    findings.push({
      severity: 'info',
      code: 'spatial-as-bytea',
      message: `${target.description}: ${list(tooLarge)} declare a SRID above ${POSTGIS_MAX_SRID}, more than PostGIS holds: loaded as ${PORTABLE}`,
    });
  }
  const rest = columns.filter((s) => !tooLarge.includes(s));
  if (rest.length === 0) return findings;
  const mayCreate = mayCreatePostgis(state, !target.exists);
  if (state.installed && target.exists) {
    findings.push({
      severity: 'info',
      code: 'spatial-postgis',
      message: `${target.description}: ${list(rest)} become PostGIS geometry columns (PostGIS ${state.installed.version} is installed in database ${target.database}, schema ${state.installed.schema})`,
    });
  } else if (state.available !== undefined && mayCreate) {
    findings.push({
      severity: 'info',
      code: 'spatial-postgis',
      message: `${target.description}: create-tables runs CREATE EXTENSION IF NOT EXISTS postgis in database ${target.database} (PostGIS ${state.available} is available there), and ${list(rest)} become PostGIS geometry columns`,
    });
  } else if (state.available !== undefined) {
    findings.push({
      severity: 'info',
      code: 'spatial-as-bytea',
      message: `${target.description}: PostGIS is available on the target but ${state.user} is no superuser: create-tables tries CREATE EXTENSION IF NOT EXISTS postgis (a managed server may allow it), and if it is refused, ${list(rest)} are loaded as ${PORTABLE}; for PostGIS geometry columns, have a superuser run CREATE EXTENSION postgis in database ${target.database} before create-tables`,
    });
  } else {
    const major = target.version.split('.')[0];
    findings.push({
      severity: 'info',
      code: 'spatial-as-bytea',
      message: `${target.description}: ${list(rest)} are loaded as ${PORTABLE}: the target server has no PostGIS; to get PostGIS geometry columns, install it on the target (Debian and Ubuntu: package postgresql-${major}-postgis-3) before create-tables`,
    });
  }
  return findings;
}
