import type { Client } from 'pg';
import type { ActivityInput, TableValidationResult, ValidateResult } from '../../plan/migration-types';
import { qualifiedKey } from '../../plan/schema-model';
import { inParallel } from '../../plan/in-parallel';
import { withHeartbeat } from '../heartbeat';
import { readTableLoads } from './bookkeeping';
import { checksumQuery, sourceChecksum, type ChecksumMethod } from './checksum';
import { closeQuietly, connect, resolveEndpoint, withConnection } from './connection';
import { toFailure } from './errors';
import { loadModel } from './model';

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
  const started = Date.now();
  const tgt = await resolveEndpoint(plan, 'target');
  const model = await loadModel(tgt, migration.runId);
  const loads = await withConnection(tgt, 'validate', (c) => readTableLoads(c, migration.runId));
  const results: TableValidationResult[] = [];
  const progress = { tablesDone: 0, tablesTotal: model.tables.length };
  return withHeartbeat(() => ({ ...progress }), async () => {
    const lanes: Client[] = [];
    try {
      await inParallel(model.tables, plan.load.parallel, async (t, i) => {
        lanes[i] ??= await connect(tgt, { purpose: 'validate' });
        const key = qualifiedKey(t);
        const load = loads.get(key);
        const method = (load?.checksum_method ?? 'text-hash') as ChecksumMethod;
        const withChecksum = plan.validate.checksums && load?.source_checksum != null && method !== ('mixed' as string);
        let r;
        try {
          r = await lanes[i]!.query<{ rows: string; checksum: string | null }>(checksumQuery(t, withChecksum, '', method));
        } catch (err) {
          throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, table: key, doing: `validating ${key}` });
        }
        const target = r.rows[0]!;
        const checksum = !withChecksum ? 'not-checked' : target.checksum === load!.source_checksum ? 'equal' : 'different';
        const sourceRows = load?.rows ?? 'not loaded';
        results.push({
          table: key,
          sourceRows,
          targetRows: target.rows,
          checksum,
          equal: sourceRows === target.rows && checksum !== 'different',
        });
        progress.tablesDone++;
      });
    } finally {
      await Promise.all(lanes.map((c) => closeQuietly(c)));
    }
    return { tables: results.sort((a, b) => a.table.localeCompare(b.table)), ms: Date.now() - started };
  });
}

/** Count and checksum of each table read on both sides now (the same method on both). */
async function validateBothSides({ plan, migration }: ActivityInput): Promise<ValidateResult> {
  const started = Date.now();
  const [src, tgt] = await Promise.all([resolveEndpoint(plan, 'source'), resolveEndpoint(plan, 'target')]);
  const model = await loadModel(tgt, migration.runId);
  const results: TableValidationResult[] = [];
  const progress = { tablesDone: 0, tablesTotal: model.tables.length };
  return withHeartbeat(() => ({ ...progress }), async () => {
    const lanes: Array<{ s: Client; t: Client }> = [];
    try {
      await inParallel(model.tables, plan.load.parallel, async (t, i) => {
        lanes[i] ??= { s: await connect(src, { purpose: 'validate' }), t: await connect(tgt, { purpose: 'validate' }) };
        const key = qualifiedKey(t);
        const source = await lanes[i]!.s.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY').then(async () => {
          try {
            return plan.validate.checksums ? await sourceChecksum(lanes[i]!.s, t) : { ...(await lanes[i]!.s.query<{ rows: string }>(checksumQuery(t, false))).rows[0]!, checksum: null, method: 'text-hash' as ChecksumMethod };
          } catch (err) {
            throw toFailure(err, 'source', { endpoint: src.description, secrets: src.secrets, table: key, doing: `validating ${key}` });
          } finally {
            await lanes[i]!.s.query('COMMIT').catch(() => undefined);
          }
        });
        let target;
        try {
          target = (await lanes[i]!.t.query<{ rows: string; checksum: string | null }>(checksumQuery(t, plan.validate.checksums, '', source.method))).rows[0]!;
        } catch (err) {
          throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, table: key, doing: `validating ${key}` });
        }
        const checksum = !plan.validate.checksums ? 'not-checked' : target.checksum === source.checksum ? 'equal' : 'different';
        results.push({ table: key, sourceRows: source.rows, targetRows: target.rows, checksum, equal: source.rows === target.rows && checksum !== 'different' });
        progress.tablesDone++;
      });
    } finally {
      await Promise.all(lanes.flatMap((l) => [closeQuietly(l.s), closeQuietly(l.t)]));
    }
    return { tables: results.sort((a, b) => a.table.localeCompare(b.table)), ms: Date.now() - started };
  });
}
