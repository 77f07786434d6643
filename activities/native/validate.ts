import type { Client } from 'pg';
import type { ActivityInput, TableValidationResult, ValidateResult } from '../../plan/migration-types';
import { qualifiedKey, type TableModel } from '../../plan/schema-model';
import { inParallel } from '../../plan/in-parallel';
import { withHeartbeat } from '../heartbeat';
import { readTableLoads } from '../target/bookkeeping';
import { checksumQuery, sourceChecksum, type ChecksumMethod } from '../pg/checksum';
import { closeQuietly, connect, resolveEndpoint, withConnection, type PgEndpoint } from '../pg/connection';
import { toFailure } from '../pg/errors';
import { loadModel } from '../target/model';

/**
 * Compares every target table with what the full load read from the source inside its
 * snapshot (count and checksum recorded then): never against a source that kept moving.
 * With CDC, validation runs after the cutover drain, when the source has stopped moving:
 * both sides are read now.
 */
export async function validatePostgres(input: ActivityInput): Promise<ValidateResult> {
  const { plan } = input;
  return plan.mode === 'full-load-and-cdc' || plan.mode === 'cdc' ? validateBothSides(input) : validateAgainstLoad(input);
}

async function validateAgainstLoad({ plan, migration }: ActivityInput): Promise<ValidateResult> {
  const tgt = await resolveEndpoint(plan, 'target');
  const model = await loadModel(tgt, migration.runId);
  const loads = await withConnection(tgt, 'validate', (c) => readTableLoads(c, migration.runId));
  return validateTables(plan, model.tables, () => [tgt], async ([target], t) => {
    const load = loads.get(qualifiedKey(t));
    const method = (load?.checksum_method ?? 'text-hash') as ChecksumMethod;
    const withChecksum = plan.validate.checksums && load?.source_checksum != null && method !== ('mixed' as string);
    const r = await count(target!, tgt, t, withChecksum, method);
    return { sourceRows: load?.rows ?? 'not loaded', targetRows: r.rows, checksum: !withChecksum ? 'not-checked' : r.checksum === load!.source_checksum ? 'equal' : 'different' };
  });
}

/** Count and checksum of each table read on both sides now (the same method on both). */
async function validateBothSides({ plan, migration }: ActivityInput): Promise<ValidateResult> {
  const [src, tgt] = await Promise.all([resolveEndpoint(plan, 'source'), resolveEndpoint(plan, 'target')]);
  const model = await loadModel(tgt, migration.runId);
  return validateTables(plan, model.tables, () => [src, tgt], async ([source, target], t) => {
    const key = qualifiedKey(t);
    let s: { rows: string; checksum: string | null; method: ChecksumMethod };
    try {
      s = plan.validate.checksums ? await sourceChecksum(source!, t) : { ...(await source!.query<{ rows: string }>(checksumQuery(t, false))).rows[0]!, checksum: null, method: 'text-hash' };
    } catch (err) {
      throw toFailure(err, 'source', { endpoint: src.description, secrets: src.secrets, table: key, doing: `validating ${key}` });
    }
    const r = await count(target!, tgt, t, plan.validate.checksums, s.method);
    return { sourceRows: s.rows, targetRows: r.rows, checksum: !plan.validate.checksums ? 'not-checked' : r.checksum === s.checksum ? 'equal' : 'different' };
  });
}

/** The target's count (and checksum) of one table. */
async function count(c: Client, tgt: PgEndpoint, t: TableModel, withChecksum: boolean, method: ChecksumMethod) {
  try {
    return (await c.query<{ rows: string; checksum: string | null }>(checksumQuery(t, withChecksum, '', method))).rows[0]!;
  } catch (err) {
    const key = qualifiedKey(t);
    throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, table: key, doing: `validating ${key}` });
  }
}

/**
 * Runs `compare` over every table, `load.parallel` at once, each lane with its own connection
 * to each endpoint; heartbeats the count done.
 */
async function validateTables(
  plan: ActivityInput['plan'],
  tables: TableModel[],
  endpoints: () => PgEndpoint[],
  compare: (lane: Client[], t: TableModel) => Promise<Omit<TableValidationResult, 'table' | 'equal'>>,
): Promise<ValidateResult> {
  const started = Date.now();
  const results: TableValidationResult[] = [];
  const progress = { tablesDone: 0, tablesTotal: tables.length };
  return withHeartbeat(() => ({ ...progress }), async () => {
    const lanes: Client[][] = [];
    try {
      await inParallel(tables, plan.load.parallel, async (t, i) => {
        lanes[i] ??= await Promise.all(endpoints().map((ep) => connect(ep, { purpose: 'validate' })));
        const r = await compare(lanes[i]!, t);
        results.push({ table: qualifiedKey(t), ...r, equal: r.sourceRows === r.targetRows && r.checksum !== 'different' });
        progress.tablesDone++;
      });
    } finally {
      await Promise.all(lanes.flat().map((c) => closeQuietly(c)));
    }
    return { tables: results.sort((a, b) => a.table.localeCompare(b.table)), ms: Date.now() - started };
  });
}
