import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { FailureType } from '../../plan/failure-types';
import { formatLsn, parseLsn } from '../postgres/lsn';
import type { ActivityInput, CdcProgress, CdcResult, CdcTableStats } from '../../plan/migration-types';
import { postAlert } from '../alerts/webhook';
import { withHeartbeat } from '../heartbeat';
import { closeQuietly, connect, resolveEndpoint, type PgEndpoint } from '../pg/connection';
import { toFailure } from '../pg/errors';
import { loadModel, tablesByKey } from '../target/model';
import { ChangeApplier, type ApplyTable } from './apply';
import { cutoverMarker, MARKER_PREFIX } from '../native/cutover';
import { RelationTracker } from '../postgres/cdc/relations';
import { openReplicationStream, type ReplicationStream } from '../postgres/cdc/replication';
import { KeylessApplier } from './keyless';
import type { PgoutputMessage, WalMessage } from '../postgres/cdc/types';

/** Source transactions grouped into one target transaction: at most this many changes… */
const BATCH_CHANGES = 50_000;
/** …or this long since the first of them (the heartbeat of a busy source becomes visible within ~0.1 s)… */
const BATCH_MS = 10;
/** …and committed at once when the stream has nothing more right now. */
const IDLE_MS = 5;
/** Heartbeat details list the busiest tables only: details must stay small. */
const TABLES_IN_HEARTBEAT = 200;

const IDLE = Symbol('idle');

interface Position {
  commitLsn: bigint;
  endLsn: bigint;
}

/**
 * The CDC applier: streams pgoutput from the slot and applies the changes to the target in
 * source-transaction order, with session_replication_role = replica (pgoutput already carries
 * cascaded rows; target triggers and foreign-key checks would act twice).
 *
 * Exactly once: small source transactions are grouped into one target transaction, which also
 * writes the last applied source position and the per-table counts to _dbferry; only once
 * that has committed does the slot learn the position (so the source keeps anything not yet
 * durable on the target). A restart resumes from the progress row and skips any transaction
 * that committed at or before it. The progress update is conditional on the position it read,
 * so two overlapping attempts can never both apply a transaction.
 *
 * Runs until it has applied the cutover marker (`dbferry cutover`), heartbeating on a timer
 * with its position, lag and statistics (an idle source never times it out).
 */
export async function streamChangesPostgres({ plan, migration }: ActivityInput): Promise<CdcResult> {
  const [src, tgt] = await Promise.all([resolveEndpoint(plan, 'source'), resolveEndpoint(plan, 'target')]);
  const model = await loadModel(tgt, migration.runId);
  const marker = cutoverMarker(migration);

  let target: Client | undefined;
  let catalog: Client | undefined;
  let stream: ReplicationStream | undefined;
  let stopPolling = () => {};
  // The source transaction being received, if any.
  let current: { finalLsn: bigint; commitTime: bigint; changed?: string } | undefined;
  const fail = (err: unknown, side: 'source' | 'target', doing: string) =>
    toFailure(err, side, { endpoint: side === 'source' ? src.description : tgt.description, secrets: side === 'source' ? src.secrets : tgt.secrets, doing });

  const totals = new Map<string, CdcTableStats>();
  let pending = new Map<string, CdcTableStats>();
  const live = {
    applied: { commitLsn: 0n, endLsn: 0n } as Position,
    confirmed: 0n,
    sourceLsn: 0n,
    transactions: 0,
    changes: 0,
    pendingSince: undefined as bigint | undefined,
    lastMessageAt: Date.now(),
    inTarget: false,
  };
  const progress = (): CdcProgress => {
    const seen = stream ? stream.lastServerWalEnd : 0n;
    const sourceLsn = [seen, live.sourceLsn, live.confirmed].reduce((a, b) => (a > b ? a : b));
    const lagBytes = sourceLsn > live.confirmed ? sourceLsn - live.confirmed : 0n;
    const caughtUp = !live.inTarget && (lagBytes === 0n || Date.now() - live.lastMessageAt > 1_000);
    return {
      appliedLsn: formatLsn(live.applied.endLsn),
      sourceLsn: formatLsn(sourceLsn),
      lagBytes: lagBytes.toString(),
      lagSeconds: live.pendingSince === undefined ? 0 : Math.max(0, Date.now() / 1000 - Number(live.pendingSince / 1000n) / 1000),
      caughtUp,
      transactions: live.transactions,
      changes: live.changes,
      tables: [...totals.values()].sort((a, b) => sum(b) - sum(a)).slice(0, TABLES_IN_HEARTBEAT),
      at: new Date().toISOString(),
    };
  };

  const alarms = new CdcAlarms(plan);
  return withHeartbeat(() => ({ ...progress(), ...alarms.details() }), async (signal) => {
    try {
      target = await connect(tgt, { purpose: 'cdc apply' });
      await target.query('SET session_replication_role = replica');
      const start = await readProgress(target, migration.runId, tgt);
      for (const s of start.tables) totals.set(s.table, s);
      live.applied = start.position;
      live.confirmed = start.position.endLsn;
      live.transactions = start.transactions;
      live.changes = start.changes;
      if (start.markerLsn) return result(start.markerLsn);

      const t = target;
      // One connection to the source's catalog, for relation types and the WAL position.
      let catalogReady: Promise<Client> | undefined;
      const sourceCatalog = () =>
        (catalogReady ??= connect(src, { purpose: 'cdc catalog' }).then((c) => (catalog = c)).catch((err) => {
          catalogReady = undefined;
          throw err;
        }));
      const relations = new RelationTracker(t, sourceCatalog, tablesByKey(model));
      const applier = new ChangeApplier(t, { endpoint: tgt.description });
      const keyless = new KeylessApplier(t);
      // Keyed changes may be in flight on the connection; the keyless ones go after them.
      const flushAll = async () => {
        await applier.flush();
        await keyless.flush();
      };
      stream = await openReplicationStream(src, {
        slot: plan.cdc.slot,
        publication: plan.cdc.publication,
        startLsn: start.position.endLsn,
        purpose: 'cdc',
        // Everything before the keepalive has been handed over: with nothing pending, the
        // source may forget WAL up to there (it held only changes of other tables).
        onKeepalive: (walEnd) => {
          if (!live.inTarget && current === undefined && walEnd > live.confirmed) {
            live.confirmed = walEnd;
            stream?.confirm(walEnd);
          }
        },
      });
      const s = stream;
      // Keepalives say how far the source is only when the stream is idle: ask it as well.
      const poll = setInterval(() => {
        void (async () => {
          const c = await sourceCatalog();
          const r = await c.query<{ lsn: string; retained: string | null }>(
            `SELECT pg_current_wal_lsn()::text AS lsn,
                    (SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text FROM pg_replication_slots WHERE slot_name = $1) AS retained`,
            [plan.cdc.slot],
          );
          const lsn = parseLsn(r.rows[0]!.lsn);
          if (lsn > live.sourceLsn) live.sourceLsn = lsn;
          await alarms.check(progress().lagSeconds, Number(r.rows[0]!.retained ?? 0));
        })().catch(() => undefined);
      }, 5_000);
      signal?.addEventListener('abort', () => clearInterval(poll));
      stopPolling = () => clearInterval(poll);
      signal?.addEventListener('abort', () => void s.close());

      let skipping = false;
      let batch = { transactions: 0, changes: 0, startedAt: 0, lastChangeAt: undefined as bigint | undefined, lastChangeTable: undefined as string | undefined };
      let markerLsn: bigint | undefined;

      const stat = (table: string) => {
        let p = pending.get(table);
        if (!p) pending.set(table, (p = { table, inserts: 0, updates: 0, deletes: 0, truncates: 0 }));
        return p;
      };

      const commitBatch = async (position: Position) => {
        try {
          await flushAll();
          const r = await t.query(
            `UPDATE _dbferry.cdc_progress
                SET commit_lsn = $3::pg_lsn, end_lsn = $4::pg_lsn, transactions = transactions + $5, changes = changes + $6,
                    last_change_at = coalesce($7::timestamptz, last_change_at), last_change_table = coalesce($8, last_change_table),
                    marker_lsn = $9::pg_lsn, updated_at = now()
              WHERE run_id = $1 AND commit_lsn = $2::pg_lsn`,
            [
              migration.runId,
              formatLsn(live.applied.commitLsn),
              formatLsn(position.commitLsn),
              formatLsn(position.endLsn),
              batch.transactions,
              batch.changes,
              batch.lastChangeAt === undefined ? null : microsToIso(batch.lastChangeAt),
              batch.lastChangeTable ?? null,
              markerLsn === undefined ? null : formatLsn(markerLsn),
            ],
          );
          if (r.rowCount !== 1) {
            throw ApplicationFailure.create({
              type: FailureType.Transient,
              message: `${tgt.description}: another CDC applier of this migration advanced the progress row; this one stops`,
            });
          }
          if (pending.size > 0) {
            const rows = [...pending.values()];
            await t.query(
              `INSERT INTO _dbferry.cdc_stats AS s (run_id, table_key, inserts, updates, deletes, truncates)
               SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
               ON CONFLICT (run_id, table_key) DO UPDATE SET inserts = s.inserts + EXCLUDED.inserts, updates = s.updates + EXCLUDED.updates,
                 deletes = s.deletes + EXCLUDED.deletes, truncates = s.truncates + EXCLUDED.truncates`,
              [migration.runId, rows.map((x) => x.table), rows.map((x) => x.inserts), rows.map((x) => x.updates), rows.map((x) => x.deletes), rows.map((x) => x.truncates)],
            );
          }
          await t.query('COMMIT');
        } catch (err) {
          await t.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
        live.inTarget = false;
        live.applied = position;
        live.confirmed = position.endLsn;
        live.transactions += batch.transactions;
        live.changes += batch.changes;
        live.pendingSince = undefined;
        for (const p of pending.values()) {
          const tot = totals.get(p.table) ?? { table: p.table, inserts: 0, updates: 0, deletes: 0, truncates: 0 };
          tot.inserts += p.inserts;
          tot.updates += p.updates;
          tot.deletes += p.deletes;
          tot.truncates += p.truncates;
          totals.set(p.table, tot);
        }
        pending = new Map();
        batch = { transactions: 0, changes: 0, startedAt: 0, lastChangeAt: undefined, lastChangeTable: undefined };
        // Only now is it durable on the target: the source may forget it.
        s.confirm(position.endLsn);
      };

      let committed: Position | undefined;
      const it = s[Symbol.asyncIterator]();
      let next = it.next();
      for (;;) {
        let r: IteratorResult<WalMessage> | typeof IDLE;
        if (live.inTarget && committed && current === undefined) {
          // Between source transactions with some applied but not committed: commit when the
          // stream pauses or the batch is old enough.
          const wait = Math.min(IDLE_MS, Math.max(0, batch.startedAt + BATCH_MS - Date.now()));
          r = await Promise.race([next, sleep(wait).then((): typeof IDLE => IDLE)]);
          if (r === IDLE) {
            await commitBatch(committed);
            committed = undefined;
            continue;
          }
        } else {
          r = await next;
        }
        if (r.done) throw ApplicationFailure.create({ type: FailureType.Transient, message: `${src.description}: the replication stream ended` });
        next = it.next();
        live.lastMessageAt = Date.now();
        const m = r.value.message;
        switch (m.tag) {
          case 'begin':
            current = { finalLsn: m.finalLsn, commitTime: m.commitTime };
            // Committed on the target already (a resumed stream may repeat the last ones).
            skipping = m.finalLsn <= live.applied.commitLsn;
            if (skipping) break;
            if (!live.inTarget) {
              await t.query('BEGIN');
              live.inTarget = true;
              batch.startedAt = Date.now();
            }
            live.pendingSince ??= m.commitTime;
            break;
          case 'relation':
            // Sent once per table and session, maybe inside a transaction that is skipped:
            // learnt either way (adding a column is idempotent).
            await relations.learn(m, flushAll);
            break;
          case 'insert':
          case 'update':
          case 'delete': {
            if (skipping) break;
            const table = relations.table(m.relationId);
            if (!table) break;
            const lsn = r.value.walStart;
            const counts = stat(table.key);
            if (m.tag === 'insert') counts.inserts++;
            else if (m.tag === 'update') counts.updates++;
            else counts.deletes++;
            if (table.keyColumns.length === 0) {
              keyless.add(table, keylessChange(m, table.key, lsn));
              if (keyless.full) await flushAll();
            } else if (m.tag === 'insert') {
              await applier.add({ kind: 'insert', table, lsn, new: m.new });
            } else if (m.tag === 'update') {
              await applier.add({ kind: 'update', table, lsn, new: m.new, ...(m.old ? { old: m.old.tuple } : {}) });
            } else {
              await applier.add({ kind: 'delete', table, lsn, old: m.old.tuple });
            }
            batch.changes++;
            current!.changed = table.key;
            break;
          }
          case 'truncate': {
            if (skipping) break;
            const tables = m.relationIds.map((id) => relations.table(id)).filter((x): x is ApplyTable => x !== null);
            if (tables.length === 0) break;
            await flushAll();
            await applier.add({ kind: 'truncate', tables, lsn: r.value.walStart, restartIdentity: m.restartIdentity });
            for (const x of tables) stat(x.key).truncates++;
            batch.changes++;
            current!.changed = tables[0]!.key;
            break;
          }
          case 'message':
            if (!skipping && m.transactional && m.prefix === MARKER_PREFIX && m.content.toString('utf8') === marker) markerLsn = m.lsn;
            break;
          case 'commit': {
            const c = current;
            current = undefined;
            if (skipping) {
              skipping = false;
              break;
            }
            batch.transactions++;
            if (c?.changed) {
              batch.lastChangeAt = m.commitTime;
              batch.lastChangeTable = c.changed;
            }
            committed = { commitLsn: m.commitLsn, endLsn: m.endLsn };
            if (markerLsn !== undefined || batch.changes >= BATCH_CHANGES || Date.now() - batch.startedAt >= BATCH_MS) {
              await commitBatch(committed);
              committed = undefined;
              if (markerLsn !== undefined) return result(formatLsn(markerLsn));
            }
            break;
          }
          default:
            break;
        }
        if (signal?.aborted) throw new CancelledFailure('CDC apply cancelled');
      }
    } catch (err) {
      if (signal?.aborted) throw new CancelledFailure('CDC apply cancelled');
      if (err instanceof ApplicationFailure) throw err;
      const side = (err as { side?: string }).side === 'source' ? 'source' : 'target';
      throw fail(err, side, side === 'source' ? 'streaming changes' : 'applying changes');
    } finally {
      stopPolling();
      await stream?.close();
      await Promise.all([closeQuietly(target), closeQuietly(catalog)]);
    }
  });

  function result(markerLsn: string): CdcResult {
    return {
      stoppedAt: 'cutover',
      appliedLsn: formatLsn(live.applied.endLsn),
      markerLsn,
      transactions: live.transactions,
      changes: live.changes,
      tables: [...totals.values()].sort((a, b) => a.table.localeCompare(b.table)),
    };
  }
}

/** A change of a table without primary key: updates and deletes need the whole old row. */
function keylessChange(m: Extract<PgoutputMessage, { tag: 'insert' | 'update' | 'delete' }>, table: string, lsn: bigint) {
  if (m.tag === 'insert') return { kind: 'insert' as const, new: m.new };
  if (m.old?.kind !== 'O') {
    throw ApplicationFailure.create({
      type: FailureType.SchemaChanged,
      nonRetryable: true,
      message: `${table} (no primary key) sent a ${m.tag} at ${formatLsn(lsn)} without its old row: its replica identity is no longer FULL`,
      details: [{ table, hint: `ALTER TABLE ${table} REPLICA IDENTITY FULL on the source (the change is lost to CDC: reload the table), then run dbferry retry` }],
    });
  }
  return m.tag === 'update' ? { kind: 'update' as const, old: m.old.tuple, new: m.new } : { kind: 'delete' as const, old: m.old.tuple };
}

/**
 * Lag and retained-WAL alerts, once per breach (again only after the value has come back under
 * half the threshold). A delivery that fails is kept for the heartbeat (`dbferry status`).
 */
class CdcAlarms {
  #lagAlerted = false;
  #walAlerted = false;
  #missed: Array<{ kind: string; at: string; error: string }> = [];

  constructor(private readonly plan: ActivityInput['plan']) {}

  details() {
    return this.#missed.length ? { alertsMissed: this.#missed } : {};
  }

  async check(lagSeconds: number, retainedBytes: number): Promise<void> {
    const a = this.plan.alerts;
    if (!a?.webhook) return;
    const gb = retainedBytes / 1024 ** 3;
    if (!this.#lagAlerted && lagSeconds > a.lagSeconds) {
      this.#lagAlerted = true;
      await this.#send('cdc-lag', `:hourglass: dbferry migration *${this.plan.name}*: CDC is ${lagSeconds.toFixed(0)} s behind the source (alert threshold ${a.lagSeconds} s)`);
    } else if (lagSeconds < a.lagSeconds / 2) this.#lagAlerted = false;
    if (!this.#walAlerted && gb > a.slotWalGb) {
      this.#walAlerted = true;
      await this.#send('slot-wal', `:floppy_disk: dbferry migration *${this.plan.name}*: replication slot ${this.plan.cdc.slot} holds ${gb.toFixed(1)} GB of WAL on the source (threshold ${a.slotWalGb} GB): CDC is behind or stopped, and the source's disk fills`);
    } else if (gb < a.slotWalGb / 2) this.#walAlerted = false;
  }

  async #send(kind: 'cdc-lag' | 'slot-wal', text: string): Promise<void> {
    const at = new Date().toISOString();
    try {
      await postAlert(this.plan, { kind, text, at });
    } catch (err) {
      this.#missed = [...this.#missed, { kind, at, error: (err as Error).message }].slice(-20);
    }
  }
}

function sum(s: CdcTableStats): number {
  return s.inserts + s.updates + s.deletes + s.truncates;
}

function microsToIso(us: bigint): string {
  const ms = us / 1000n;
  return `${new Date(Number(ms)).toISOString().slice(0, 19)}.${(us % 1_000_000n).toString().padStart(6, '0')}Z`;
}

async function readProgress(c: Client, runId: string, tgt: PgEndpoint) {
  const r = await c.query<{ commit_lsn: string; end_lsn: string; marker_lsn: string | null; transactions: string; changes: string }>(
    'SELECT commit_lsn::text, end_lsn::text, marker_lsn::text, transactions::text, changes::text FROM _dbferry.cdc_progress WHERE run_id = $1',
    [runId],
  );
  const row = r.rows[0];
  if (!row) {
    throw ApplicationFailure.create({
      type: FailureType.SourceObjectMissing,
      nonRetryable: true,
      message: `${tgt.description}: this migration has no CDC progress row (_dbferry.cdc_progress): CDC was not prepared`,
      details: [{ hint: 'run dbferry retry: the cdc step prepares it first' }],
    });
  }
  const stats = await c.query<{ table_key: string; inserts: string; updates: string; deletes: string; truncates: string }>(
    'SELECT table_key, inserts::text, updates::text, deletes::text, truncates::text FROM _dbferry.cdc_stats WHERE run_id = $1',
    [runId],
  );
  return {
    position: { commitLsn: parseLsn(row.commit_lsn), endLsn: parseLsn(row.end_lsn) },
    markerLsn: row.marker_lsn,
    transactions: Number(row.transactions),
    changes: Number(row.changes),
    tables: stats.rows.map((x) => ({ table: x.table_key, inserts: Number(x.inserts), updates: Number(x.updates), deletes: Number(x.deletes), truncates: Number(x.truncates) })),
  };
}
