import type { Finding } from '../../plan/migration-types';
import { qualifiedKey, type TableModel } from '../../plan/schema-model';
import { existingTables } from '../pg/catalog';
import { withConnection, type PgEndpoint } from '../pg/connection';
import { endpointInfo } from '../pg/endpoint-info';
import { postgisFindings, postgisOnTarget, spatialColumns, type PostgisOnTarget } from './postgis';

/**
 * The target side of preflight: the server's version, whether the database exists or may be
 * created, which of the migrated tables are already there, and whether MySQL's spatial columns
 * will be PostGIS geometry there. Findings only.
 */
export async function targetChecks(
  tgt: PgEndpoint,
  createDatabase: boolean,
  tables: TableModel[],
  findings: Finding[],
  /** The step an existing table stops; undefined in mode cdc, where the tables must exist. */
  stoppingStep: string | undefined,
) {
  const spatial = spatialColumns(tables).length > 0;
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
      // A database create-database will make has no extension yet: what the server offers.
      const postgis = spatial && !rows[0]!.exists ? await postgisOnTarget(admin) : undefined;
      return { info, postgis, ...rows[0]! };
    },
    'postgres',
  );
  const spatialFindings = (postgis: PostgisOnTarget) =>
    findings.push(...postgisFindings(tables, postgis, { description: tgt.description, database: tgt.database, version: server.info.version, exists: server.exists }));
  if (!server.exists && !createDatabase) {
    findings.push({ severity: 'blocking', code: 'target-database-missing', message: `${tgt.description}: database ${tgt.database} does not exist and target.createDatabase is false` });
  } else if (!server.exists && !server.can_create) {
    findings.push({ severity: 'blocking', code: 'target-privilege', message: `${tgt.description}: database ${tgt.database} does not exist and the target user may not create databases (CREATEDB)` });
  }
  if (!server.exists) {
    if (server.postgis) spatialFindings(server.postgis);
    return server.info;
  }
  await withConnection(tgt, 'preflight', async (c) => {
    if (spatial) spatialFindings(await postgisOnTarget(c));
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
