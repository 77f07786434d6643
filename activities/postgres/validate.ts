import type { Client } from 'pg';
import type { ActivityInput, TableValidationResult, ValidateResult } from '../../plan/migration-types';
import { qualifiedKey } from '../../plan/schema-model';
import { inParallel } from '../../plan/in-parallel';
import { withHeartbeat } from '../heartbeat';
import { readTableLoads } from './bookkeeping';
import { checksumQuery, type ChecksumMethod } from './checksum';
import { closeQuietly, connect, resolveEndpoint, withConnection } from './connection';
import { toFailure } from './errors';
import { loadModel } from './model';

/**
 * Compares every target table with what the full load read from the source inside its
 * snapshot (count and checksum recorded then): never against a source that kept moving.
 */
export async function validatePostgres({ plan, migration }: ActivityInput): Promise<ValidateResult> {
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
