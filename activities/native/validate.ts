import type { Client } from 'pg';
import { inParallel } from '../../plan/in-parallel';
import type { ActivityInput, TableValidationResult, ValidateResult } from '../../plan/migration-types';
import { qualifiedKey, type TableModel } from '../../plan/schema-model';
import type { ChecksumMethod, SourceEngine, SourceReader } from '../engine';
import { withHeartbeat } from '../heartbeat';
import { checksumQuery } from '../pg/checksum';
import { closeQuietly, connect, withConnection, type PgEndpoint } from '../pg/connection';
import { toFailure } from '../pg/errors';
import { readTableLoads } from '../target/bookkeeping';
import { loadModel } from '../target/model';

const WHOLE = { kind: 'whole' } as const;

/**
 * Compares every target table with what the full load read from the source inside its
 * snapshot (count and checksum recorded then): never against a source that kept moving.
 * With CDC, validation runs after the cutover drain, when the source has stopped moving:
 * both sides are read now.
 */
export async function validate(input: ActivityInput, engine: SourceEngine, tgt: PgEndpoint): Promise<ValidateResult> {
  const { plan } = input;
  return plan.mode === 'full-load-and-cdc' || plan.mode === 'cdc' ? validateBothSides(input, engine, tgt) : validateAgainstLoad(input, tgt);
}

async function validateAgainstLoad({ plan, migration }: ActivityInput, tgt: PgEndpoint): Promise<ValidateResult> {
  const model = await loadModel(tgt, migration.runId);
  const loads = await withConnection(tgt, 'validate', (c) => readTableLoads(c, migration.runId));
  return validateTables(plan, model.tables, tgt, undefined, async ({ target }, t) => {
    const load = loads.get(qualifiedKey(t));
    const method = (load?.checksum_method ?? 'text-hash') as ChecksumMethod;
    const withChecksum = plan.validate.checksums && load?.source_checksum != null && method !== ('mixed' as string);
    const r = await count(target, tgt, t, withChecksum, method);
    return { sourceRows: load?.rows ?? 'not loaded', targetRows: r.rows, checksum: !withChecksum ? 'not-checked' : r.checksum === load!.source_checksum ? 'equal' : 'different' };
  });
}

/** Count and checksum of each table read on both sides now (the same method on both). */
async function validateBothSides({ plan, migration }: ActivityInput, engine: SourceEngine, tgt: PgEndpoint): Promise<ValidateResult> {
  const model = await loadModel(tgt, migration.runId);
  return validateTables(plan, model.tables, tgt, engine, async ({ source, target }, t) => {
    const s = await source!.checksum(t, WHOLE, plan.validate.checksums);
    const r = await count(target, tgt, t, plan.validate.checksums, s.method);
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

interface Lane {
  target: Client;
  source?: SourceReader;
}

/**
 * Runs `compare` over every table, `load.parallel` at once, each lane with its own target
 * connection (and source reader, when the source is read now); heartbeats the count done.
 */
async function validateTables(
  plan: ActivityInput['plan'],
  tables: TableModel[],
  tgt: PgEndpoint,
  engine: SourceEngine | undefined,
  compare: (lane: Lane, t: TableModel) => Promise<Omit<TableValidationResult, 'table' | 'equal'>>,
): Promise<ValidateResult> {
  const started = Date.now();
  const results: TableValidationResult[] = [];
  const progress = { tablesDone: 0, tablesTotal: tables.length };
  return withHeartbeat(() => ({ ...progress }), async () => {
    const lanes: Lane[] = [];
    try {
      await inParallel(tables, plan.load.parallel, async (t, i) => {
        lanes[i] ??= { target: await connect(tgt, { purpose: 'validate' }), ...(engine ? { source: await engine.openReader() } : {}) };
        const r = await compare(lanes[i]!, t);
        results.push({ table: qualifiedKey(t), ...r, equal: r.sourceRows === r.targetRows && r.checksum !== 'different' });
        progress.tablesDone++;
      });
    } finally {
      await Promise.all(lanes.flatMap((l) => (l.source ? [closeQuietly(l.target), l.source.close()] : [closeQuietly(l.target)])));
    }
    return { tables: results.sort((a, b) => a.table.localeCompare(b.table)), ms: Date.now() - started };
  });
}
