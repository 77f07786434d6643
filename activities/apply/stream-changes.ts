import { busiest, TABLES_LISTED } from '../../plan/table-lists';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { Client, QueryResult } from 'pg';
import { FailureType } from '../../plan/failure-types';
import type { Alert, ActivityInput, CdcProgress, CdcResult, CdcTableStats } from '../../plan/migration-types';
import type { ChangeEvent, ChangeStream, EnginePosition, SourceEngine, SourceRowChange } from '../engine';
import { CdcAlarms } from './cdc-alarms';
import { withHeartbeat } from '../heartbeat';
import { cdcApplied, cdcState } from '../telemetry';
import { closeQuietly, connect, type PgEndpoint } from '../pg/connection';
import { toFailure } from '../pg/errors';
import { cutoverMarker } from '../../plan/cutover-marker';
import { loadModel, tablesByKey } from '../target/model';
import { ChangeApplier, type ApplyTable, type Change } from './apply';
import { KeylessApplier } from './keyless';
import { readProgress, type AppliedPosition } from './progress';
import { RelationTracker } from './relations';
import { SourcePositions } from './caught-up';
import { commitsWithoutWaiting, DurableCommits } from './durable-commits';
import { parseLsn } from '../postgres/lsn';

/** Source transactions grouped into one target transaction: at most this many changes… */
const BATCH_CHANGES = 50_000;
/** …or this long since the first of them (the heartbeat of a busy source becomes visible within ~0.1 s)… */
const BATCH_MS = 10;
/** …and committed at once when the stream has nothing more right now. */
const IDLE_MS = 5;
/** How often an applier without in-stream markers looks for cutover's stop position (and records how far it read). */
const STOP_CHECK_MS = 1_000;
/** How often the source's position (and retained data) is read while streaming. */
const POLL_MS = 1_000;
/** Heartbeats (with the lag and "caught up" that `status` shows) this often. */
const HEARTBEAT_MS = 1_000;
/**
 * How often an idle applier asks whether its last commits reached the target's disk (the WAL
 * writer flushes them within wal_writer_delay, 200 ms by default): until then the source keeps them.
 */
const FLUSH_POLL_MS = 100;

/**
 * Large transactions applied at once, each on its own target connection: beyond this (or a
 * column added while one is open, or one with too many subtransactions) CDC starts again
 * without streaming them.
 */
const MAX_STREAMED = 8;
/** Each subtransaction of a streamed transaction costs a savepoint (and a flush) on the target. */
const MAX_SUBTRANSACTIONS = 1_000;
/**
 * While a streamed transaction holds row locks on the target, no apply connection waits longer
 * than this for a lock: the holder may be waiting for this same loop. The source's own locks
 * keep the connections' rows apart; should they ever meet, CDC starts again without streaming.
 */
const STREAMED_LOCK_TIMEOUT = '10s';

const IDLE = Symbol('idle');
/** PostgreSQL's lock_not_available: lock_timeout ran out. */
const LOCK_NOT_AVAILABLE = '55P03';

/** Migrations whose applier met a streamed transaction it does not apply while it runs: until the worker restarts, they stream none. */
const streamingOff = new Set<string>();

/** What one target transaction applies: its source transactions' counts, and cutover's marker if it came. */
interface Batch {
  transactions: number;
  changes: number;
  startedAt: number;
  lastChangeAt?: bigint;
  lastChangeTable?: string;
  stats: Map<string, CdcTableStats>;
  marker?: EnginePosition;
}

const newBatch = (): Batch => ({ transactions: 0, changes: 0, startedAt: 0, stats: new Map() });

function stat(b: Batch, table: string): CdcTableStats {
  let p = b.stats.get(table);
  if (!p) b.stats.set(table, (p = { table, inserts: 0, updates: 0, deletes: 0, truncates: 0 }));
  return p;
}

/** A batch's counts, to go back to when a subtransaction rolls back. */
function countsOf(b: Batch): Pick<Batch, 'changes' | 'lastChangeTable' | 'stats' | 'marker'> {
  return { changes: b.changes, lastChangeTable: b.lastChangeTable, marker: b.marker, stats: new Map([...b.stats].map(([k, v]) => [k, { ...v }])) };
}

/** Where a transaction's changes go: the main connection's batch, or a streamed transaction's own. */
interface Sink {
  applier: ChangeApplier;
  keyless: KeylessApplier;
  batch: Batch;
  flush(): Promise<void>;
}

/**
 * A large source transaction received in pieces while it runs (PostgreSQL's streaming), applied
 * on a target connection of its own, opened at its first change, and committed there, with the
 * progress row, when the source's commit comes, in commit order. Its subtransactions are
 * savepoints, so one the source rolls back is rolled back on the target too.
 */
interface Streamed extends Partial<Sink> {
  xid: number;
  conn?: Client;
  batch: Batch;
  savepoints: Array<{ subxid: number; before: ReturnType<typeof countsOf> }>;
}

export interface StreamChangesDeps {
  /** Lag and retained-data alarms go out through this (the webhook, in production). */
  alert(plan: ActivityInput['plan'], alert: Alert): Promise<void>;
}

/**
 * The CDC applier, engine-neutral: it reads the source engine's change stream and applies the
 * changes to the PostgreSQL target in source-transaction order, with
 * session_replication_role = replica (the source already sent cascaded rows; target triggers
 * and foreign-key checks would act twice).
 *
 * Exactly once: small source transactions are grouped into one target transaction, which also
 * writes the last applied source position and the per-table counts to _dbferry; only once
 * that has committed does the source learn the position (so it keeps anything not yet durable
 * on the target). A restart resumes from the progress row and skips any transaction that
 * committed at or before it. The progress update is conditional on the position it read, so two
 * overlapping attempts can never both apply a transaction.
 *
 * Runs until it has applied the cutover marker (`dbferry cutover`), heartbeating on a timer
 * with its position, lag and statistics (an idle source never times it out).
 */
export async function streamChanges(
  { plan, migration }: ActivityInput,
  engine: SourceEngine,
  tgt: PgEndpoint,
  deps: StreamChangesDeps,
): Promise<CdcResult> {
  const cdc = engine.cdc;
  const model = await loadModel(tgt, migration.runId);
  const marker = cutoverMarker(migration);
  const later = (a: EnginePosition, b: EnginePosition) => cdc.compare(a, b) > 0;
  const seen = new SourcePositions((a, b) => cdc.compare(a, b));

  let target: Client | undefined;
  let stream: ChangeStream | undefined;
  let stopPolling = () => {};
  // Rolls back the large transactions being applied while they run.
  let dropAllStreamed = async () => {};
  // How many are being applied, with their changes so far (for status).
  let inProgress = (): Pick<CdcProgress, 'inProgress'> => ({});
  // The apply connections give up waiting for locks (STREAMED_LOCK_TIMEOUT): a streamed transaction holds some.
  let streamedLocks = false;
  const withoutStreaming = (why: string) => {
    streamingOff.add(migration.runId);
    return ApplicationFailure.create({
      type: FailureType.Transient,
      message: `${engine.description}: ${why}: CDC starts again without applying large transactions while they run (they are applied after their commit)`,
    });
  };
  // The source transaction being received, if any.
  let current: { changed?: string } | undefined;
  // An idle report that came while a batch was open (engines without in-stream markers).
  let idleSeen: EnginePosition | undefined;

  const totals = new Map<string, CdcTableStats>();
  const live = {
    applied: undefined as AppliedPosition | undefined,
    /** The source may forget up to here: durable on the target. */
    confirmed: '' as EnginePosition,
    /** The target has (visibly, maybe not yet on disk) everything up to here. */
    reached: '' as EnginePosition,
    sourcePosition: undefined as EnginePosition | undefined,
    transactions: 0,
    changes: 0,
    pendingSince: undefined as bigint | undefined,
    inTarget: false,
    streaming: false,
  };
  const progress = (): CdcProgress => {
    let source = live.reached;
    for (const p of [stream?.sourcePosition(), live.sourcePosition]) if (p && source && later(p, source)) source = p;
    const lagBytes = source && live.reached ? cdc.distance(live.reached, source) : 0n;
    // Caught up only once this attempt streams and has passed a position it read from the
    // source lately: before that (or while the stream keeps failing) nothing says the target
    // has what the source has. What the target shows counts, on disk or not yet: cutover's
    // last commit waits for the disk.
    const caughtUp = live.streaming && seen.caughtUp(live.reached, Date.now());
    return {
      appliedPosition: live.applied?.endPosition ?? '',
      sourcePosition: source,
      lagBytes: (lagBytes > 0n ? lagBytes : 0n).toString(),
      lagSeconds: live.pendingSince === undefined ? 0 : Math.max(0, Date.now() / 1000 - Number(live.pendingSince / 1000n) / 1000),
      caughtUp,
      transactions: live.transactions,
      changes: live.changes,
      ...inProgress(),
      tables: [...totals.values()].sort((a, b) => sum(b) - sum(a)).slice(0, TABLES_LISTED),
      at: new Date().toISOString(),
    };
  };

  const alarms = new CdcAlarms(plan, deps);
  return withHeartbeat(() => ({ ...progress(), ...alarms.details() }), async (signal) => {
    try {
      target = await connect(tgt, { purpose: 'cdc apply' });
      await target.query('SET session_replication_role = replica');
      const asyncCommit = await commitsWithoutWaiting(target);
      const start = await readProgress(target, migration.runId, tgt);
      for (const s of start.tables) totals.set(s.table, s);
      live.applied = start.position;
      live.confirmed = start.position.endPosition;
      live.reached = live.confirmed;
      live.transactions = start.transactions;
      live.changes = start.changes;
      if (start.markerPosition) return result(start.markerPosition);

      const t = target;
      const relations = new RelationTracker(t, tablesByKey(model), !cdc.sendsCascadedChanges);
      const applier = new ChangeApplier(t, { endpoint: tgt.description });
      const keyless = new KeylessApplier(t);
      // Keyed changes may be in flight on the connection; the keyless ones go after them.
      const flushAll = async () => {
        await applier.flush();
        await keyless.flush();
      };
      stream = await cdc.open(start.position.endPosition, model, { streaming: plan.cdc.streaming !== false && !streamingOff.has(migration.runId) });
      const s = stream;
      const openedAt = Date.now();
      live.sourcePosition = (await s.state()).position;
      seen.add(live.sourcePosition, openedAt);
      live.streaming = true;
      // Everything before an idle report has been handed over: with nothing pending, the
      // source may forget up to there (it held only changes of other tables).
      const confirm = (p: EnginePosition) => {
        live.confirmed = p;
        if (later(p, live.reached)) live.reached = p;
        s.confirm(p);
      };
      const durable = new DurableCommits();
      /** `p` for the source to forget once what is applied is on the target's disk. */
      const confirmWhenDurable = (p: EnginePosition) => {
        if (later(p, live.reached)) live.reached = p;
        if (!durable.extend(p)) confirm(p);
      };
      const readFlushed = async () => {
        const r = await t.query<{ flushed: string }>('SELECT pg_current_wal_flush_lsn()::text AS flushed');
        const p = durable.flushedTo(parseLsn(r.rows[0]!.flushed));
        if (p) confirm(p);
      };
      /** The source sent everything up to `p`: every event before it has been handled. */
      const idleAt = (p: EnginePosition) => {
        if (!live.inTarget && current === undefined && later(p, live.confirmed) && later(p, live.applied!.endPosition)) {
          confirmWhenDurable(p);
        } else if (!cdc.marksInStream) {
          // MySQL's idle reports are events, not keepalives: the source may not say it again.
          // Confirmed once the batch holding the transactions before it has committed.
          idleSeen = p;
        }
      };
      // A failure found on the timer (not in the stream) ends the loop through this.
      // Not a promise raced on every event: each race would leave a reaction on a promise that
      // never settles, holding that event (and every one after it) for the activity's life.
      let fatal: { error: unknown } | undefined;
      let interrupt: ((err: unknown) => void) | undefined;
      const failStream = (err: unknown) => {
        fatal ??= { error: err };
        interrupt?.(err);
      };
      /** `p`, or the timer's failure should one come first. */
      const unlessFailed = <T>(p: Promise<T>): Promise<T> =>
        new Promise<T>((resolve, reject) => {
          if (fatal) return reject(fatal.error);
          interrupt = reject;
          p.then(resolve, reject);
        });
      // The stream says how far the source is only when it is idle: ask the source as well.
      const poll = setInterval(() => {
        void (async () => {
          const readAt = Date.now();
          const state = await s.state();
          seen.add(state.position, readAt);
          if (state.structureChanged?.length) {
            failStream(
              ApplicationFailure.create({
                type: FailureType.SchemaChanged,
                nonRetryable: true,
                message: `${engine.description}: ${state.structureChanged.join('; ')}: CDC does not follow a partition or child table attached or detached while it runs (its rows would go missing from, or stay in, the parent on the target)`,
                details: [{ hint: 'abort this migration and start it again, so the load takes the source as it is now (the target tables must be dropped first)' }],
              }),
            );
          }
          if (!live.sourcePosition || later(state.position, live.sourcePosition)) live.sourcePosition = state.position;
          const lagSeconds = progress().lagSeconds;
          await alarms.check(lagSeconds, state.retainedBytes, state.retainedBy);
          cdcState(lagSeconds, state.retainedBytes);
        })().catch(() => undefined);
      }, POLL_MS);
      signal?.addEventListener('abort', () => clearInterval(poll));
      stopPolling = () => clearInterval(poll);
      signal?.addEventListener('abort', () => void s.close());

      let skipping = false;
      const main: Sink = { applier, keyless, batch: newBatch(), flush: flushAll };

      /**
       * Commits `b` on `conn` (the main connection, or a streamed transaction's) with the
       * progress row moved to `position`, conditionally on where this applier left it.
       */
      const commitOn = async (conn: Client, flush: () => Promise<void>, b: Batch, position: AppliedPosition) => {
        // The commit's end in the target's WAL, and how far that WAL is on disk.
        let committedAt: { lsn: bigint; flushed: bigint } | undefined;
        try {
          await flush();
          const r = await conn.query(
            `UPDATE _dbferry.cdc_progress
                SET commit_position = $3, end_position = $4, transactions = transactions + $5, changes = changes + $6,
                    last_change_at = coalesce($7::timestamptz, last_change_at), last_change_table = coalesce($8, last_change_table),
                    marker_position = $9, updated_at = now()
              WHERE run_id = $1 AND commit_position = $2`,
            [
              migration.runId,
              live.applied!.commitPosition,
              position.commitPosition,
              position.endPosition,
              b.transactions,
              b.changes,
              b.lastChangeAt === undefined ? null : microsToIso(b.lastChangeAt),
              b.lastChangeTable ?? null,
              b.marker ?? null,
            ],
          );
          if (r.rowCount !== 1) {
            throw ApplicationFailure.create({
              type: FailureType.Transient,
              message: `${tgt.description}: another CDC applier of this migration advanced the progress row; this one stops`,
            });
          }
          if (b.stats.size > 0) {
            const rows = [...b.stats.values()];
            await conn.query(
              `INSERT INTO _dbferry.cdc_stats AS s (run_id, table_key, inserts, updates, deletes, truncates)
               SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
               ON CONFLICT (run_id, table_key) DO UPDATE SET inserts = s.inserts + EXCLUDED.inserts, updates = s.updates + EXCLUDED.updates,
                 deletes = s.deletes + EXCLUDED.deletes, truncates = s.truncates + EXCLUDED.truncates`,
              [migration.runId, rows.map((x) => x.table), rows.map((x) => x.inserts), rows.map((x) => x.updates), rows.map((x) => x.deletes), rows.map((x) => x.truncates)],
            );
          }
          // The last transaction before cutover waits for the disk: cutover reports it done.
          const commit = await conn.query(
            `${b.marker !== undefined && asyncCommit ? 'SET LOCAL synchronous_commit = on; ' : ''}COMMIT${
              asyncCommit ? '; SELECT pg_current_wal_insert_lsn()::text AS lsn, pg_current_wal_flush_lsn()::text AS flushed' : ''
            }`,
          );
          if (asyncCommit) {
            const row = (commit as unknown as QueryResult[]).at(-1)!.rows[0] as { lsn: string; flushed: string };
            committedAt = { lsn: parseLsn(row.lsn), flushed: parseLsn(row.flushed) };
          }
        } catch (err) {
          await conn.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
        if (conn === t) live.inTarget = false;
        live.applied = position;
        live.transactions += b.transactions;
        live.changes += b.changes;
        live.pendingSince = undefined;
        cdcApplied(b.stats.values());
        for (const p of b.stats.values()) {
          const tot = totals.get(p.table) ?? { table: p.table, inserts: 0, updates: 0, deletes: 0, truncates: 0 };
          tot.inserts += p.inserts;
          tot.updates += p.updates;
          tot.deletes += p.deletes;
          tot.truncates += p.truncates;
          totals.set(p.table, tot);
        }
        live.reached = position.endPosition;
        // Only once it is durable on the target may the source forget it.
        if (committedAt) {
          durable.committed(committedAt.lsn, position.endPosition);
          const p = durable.flushedTo(committedAt.flushed);
          if (p) confirm(p);
        } else {
          confirm(position.endPosition);
        }
        if (idleSeen && current === undefined && later(idleSeen, position.endPosition)) confirmWhenDurable(idleSeen);
        idleSeen = undefined;
      };
      const commitBatch = async (position: AppliedPosition) => {
        const b = main.batch;
        await commitOn(t, flushAll, b, position);
        main.batch = newBatch();
      };

      // Large transactions being applied while they run, by source transaction id.
      const streams = new Map<number, Streamed>();
      // The one whose piece the stream is sending now.
      let block: Streamed | undefined;
      /** The stream broke its own order: read again from the last applied position. */
      const streamBroken = (what: string) => ApplicationFailure.create({ type: FailureType.Transient, message: `${engine.description}: ${what}` });
      const flushStreamed = async (st: Streamed) => {
        await st.applier?.flush();
        await st.keyless?.flush();
      };
      const dropStreamed = async (st: Streamed | undefined) => {
        if (!st) return;
        streams.delete(st.xid);
        if (block === st) block = undefined;
        // Closing rolls back whatever it applied.
        await closeQuietly(st.conn);
        if (streamedLocks && ![...streams.values()].some((x) => x.conn)) {
          streamedLocks = false;
          await t.query('SET lock_timeout = 0').catch(() => undefined);
        }
      };
      /** The sink for a change of (sub)transaction `xid` in the current piece: its connection opened, its savepoint set. */
      const streamSink = async (xid: number): Promise<Sink> => {
        const st = block;
        if (!st) throw streamBroken(`the change stream sent a change of transaction ${xid} outside any piece of a transaction`);
        if (!st.conn) {
          if ([...streams.values()].filter((x) => x.conn).length >= MAX_STREAMED) throw withoutStreaming(`more than ${MAX_STREAMED} large transactions ran at once`);
          if (!streamedLocks) {
            await t.query(`SET lock_timeout = '${STREAMED_LOCK_TIMEOUT}'`);
            streamedLocks = true;
          }
          st.conn = await connect(tgt, { purpose: 'cdc apply (a large transaction)' });
          await st.conn.query(
            `SET session_replication_role = replica; SET synchronous_commit = ${asyncCommit ? 'off' : 'on'}; SET lock_timeout = '${STREAMED_LOCK_TIMEOUT}'; BEGIN`,
          );
          st.applier = new ChangeApplier(st.conn, { endpoint: tgt.description });
          st.keyless = new KeylessApplier(st.conn);
          st.flush = () => flushStreamed(st);
        }
        if (xid !== st.xid && !st.savepoints.some((x) => x.subxid === xid)) {
          if (st.savepoints.length >= MAX_SUBTRANSACTIONS) throw withoutStreaming(`a large transaction has more than ${MAX_SUBTRANSACTIONS} subtransactions`);
          await flushStreamed(st);
          await st.conn.query(`SAVEPOINT dbferry_sub_${xid}`);
          st.savepoints.push({ subxid: xid, before: countsOf(st.batch) });
        }
        return st as Sink;
      };
      inProgress = () => {
        if (streams.size === 0) return {};
        let changes = 0;
        for (const x of streams.values()) changes += x.batch.changes;
        return { inProgress: { transactions: streams.size, changes } };
      };
      dropAllStreamed = async () => {
        for (const st of [...streams.values()]) await dropStreamed(st);
      };
      /** Commits the main connection's batch, so that a streamed transaction's row locks never wait for it. */
      const commitMain = async () => {
        if (live.inTarget && committed && current === undefined) {
          await commitBatch(committed);
          committed = undefined;
        }
      };

      let committed: AppliedPosition | undefined;
      const it = s[Symbol.asyncIterator]();
      // The next batch is asked for before the current one is applied (the stream reads on while
      // the target works). Should the source fail meanwhile, that promise rejects while nobody
      // awaits it yet: marked handled here (the loop still gets the error when it awaits), an
      // unhandled rejection would kill the whole worker.
      const pull = () => {
        const p = it.next();
        p.catch(() => undefined);
        return p;
      };
      let next = pull();
      // Cutover without a marker in the stream: it records on the target the source position
      // where writes stopped; the applier stops once it has everything up to there.
      let lastStopCheck = 0;
      let tick: Promise<typeof IDLE> | undefined;
      const nextTick = () =>
        (tick ??= sleep(STOP_CHECK_MS).then((): typeof IDLE => {
          tick = undefined;
          return IDLE;
        }));
      const reachedStop = async (): Promise<EnginePosition | undefined> => {
        lastStopCheck = Date.now();
        const applied = live.applied!;
        // Where the stream has read to while idle (only other tables' transactions since the
        // last commit): cutover's catch-up check compares it with the source's position.
        if (later(live.confirmed, applied.endPosition)) {
          const u = await t.query('UPDATE _dbferry.cdc_progress SET end_position = $3, updated_at = now() WHERE run_id = $1 AND commit_position = $2', [
            migration.runId,
            applied.commitPosition,
            live.confirmed,
          ]);
          if (u.rowCount === 1) live.applied = { ...applied, endPosition: live.confirmed };
        }
        const r = await t.query<{ stop_position: string | null }>('SELECT stop_position FROM _dbferry.cdc_progress WHERE run_id = $1', [migration.runId]);
        const stop = r.rows[0]?.stop_position;
        if (!stop || later(stop, live.confirmed)) return undefined;
        await t.query('SET synchronous_commit = on');
        await t.query('UPDATE _dbferry.cdc_progress SET marker_position = $2, updated_at = now() WHERE run_id = $1', [migration.runId, stop]);
        return stop;
      };
      for (;;) {
        if (!cdc.marksInStream && !live.inTarget && current === undefined && Date.now() - lastStopCheck >= STOP_CHECK_MS) {
          const stop = await reachedStop();
          if (stop) return result(stop);
        }
        let r: IteratorResult<ChangeEvent[]> | typeof IDLE;
        if (live.inTarget && committed && current === undefined) {
          // Between source transactions with some applied but not committed: commit when the
          // stream pauses or the batch is old enough.
          const wait = Math.min(IDLE_MS, Math.max(0, main.batch.startedAt + BATCH_MS - Date.now()));
          r = await unlessFailed(Promise.race([next, sleep(wait).then((): typeof IDLE => IDLE)]));
          if (r === IDLE) {
            await commitBatch(committed);
            committed = undefined;
            continue;
          }
        } else if (!live.inTarget && current === undefined && (durable.waiting || !cdc.marksInStream)) {
          // Between transactions, all committed: ask the target how far its disk is while
          // commits wait for it (and look for the stop position on the timer, see above).
          const waiting = durable.waiting;
          r = await unlessFailed(Promise.race([next, waiting ? sleep(FLUSH_POLL_MS).then((): typeof IDLE => IDLE) : nextTick()]));
          if (r === IDLE) {
            if (waiting) await readFlushed();
            continue;
          }
        } else {
          r = await unlessFailed(next);
        }
        if (r.done) throw ApplicationFailure.create({ type: FailureType.Transient, message: `${engine.description}: the change stream ended` });
        next = pull();
        seen.event(Date.now());
        for (const e of r.value) {
          switch (e.kind) {
            case 'idle':
              idleAt(e.position);
              break;
            case 'begin':
              current = {};
              // Committed on the target already (a resumed stream may repeat the last ones).
              skipping = !later(e.commitPosition, live.applied!.commitPosition);
              if (skipping) break;
              if (!live.inTarget) {
                await t.query('BEGIN');
                live.inTarget = true;
                main.batch.startedAt = Date.now();
              }
              live.pendingSince ??= e.commitTimeMicros;
              break;
            case 'relation':
              // Sent once per table and session, maybe inside a transaction that is skipped:
              // learnt either way (adding a column is idempotent).
              await relations.learn(e.relation, async (altering) => {
                // The ALTER TABLE would wait for a streamed transaction's locks on the table, and
                // that transaction for this loop: never started.
                if (altering && [...streams.values()].some((x) => x.conn)) {
                  throw withoutStreaming(`a column was added to ${e.relation.schema}.${e.relation.name} while a large transaction was being applied`);
                }
                await flushAll();
                for (const x of streams.values()) await flushStreamed(x);
              });
              break;
            case 'change': {
              if (e.xid === undefined && skipping) break;
              const m = e.change;
              const table = relations.table(m.relationId);
              if (!table) break;
              // A large transaction's own changes go to its open connection without an await.
              const sink = e.xid === undefined ? main : block?.conn && e.xid === block.xid ? (block as Sink) : await streamSink(e.xid);
              const position = e.position;
              const counts = stat(sink.batch, table.key);
              if (m.kind === 'insert') counts.inserts++;
              else if (m.kind === 'update') counts.updates++;
              else counts.deletes++;
              if (table.keyColumns.length === 0) {
                sink.keyless.add(table, keylessChange(m, table.key, position));
                if (sink.keyless.full) await sink.flush();
              } else {
                // Awaited only when the applier says so: most changes are buffered at once.
                const waiting = sink.applier.add(keyedChange(m, table, position));
                if (waiting) await waiting;
              }
              sink.batch.changes++;
              if (e.xid === undefined) current!.changed = table.key;
              else sink.batch.lastChangeTable = table.key;
              break;
            }
            case 'truncate': {
              if (e.xid === undefined && skipping) break;
              const tables = e.relationIds.map((id) => relations.table(id)).filter((x): x is ApplyTable => x !== null);
              if (tables.length === 0) break;
              const sink = e.xid === undefined ? main : await streamSink(e.xid);
              await sink.flush();
              await sink.applier.add({ kind: 'truncate', tables, position: e.position, restartIdentity: e.restartIdentity });
              for (const x of tables) stat(sink.batch, x.key).truncates++;
              sink.batch.changes++;
              if (e.xid === undefined) current!.changed = tables[0]!.key;
              else sink.batch.lastChangeTable = tables[0]!.key;
              break;
            }
            case 'marker':
              if (e.content !== marker) break;
              if (e.xid === undefined) {
                if (!skipping) main.batch.marker = e.position;
              } else if (block) {
                block.batch.marker = e.position;
              }
              break;
            case 'stream-start': {
              await commitMain();
              let st = streams.get(e.xid);
              if (!st) {
                // A later piece of a transaction this applier has not seen begin: what came before is not on the target.
                if (!e.first) throw streamBroken(`the change stream continued transaction ${e.xid} without its first part`);
                streams.set(e.xid, (st = { xid: e.xid, batch: newBatch(), savepoints: [] }));
              }
              block = st;
              break;
            }
            case 'stream-stop':
              // Applied now, while the source's transaction goes on.
              if (block) await flushStreamed(block);
              block = undefined;
              break;
            case 'stream-abort': {
              const st = streams.get(e.xid);
              if (!st) break;
              if (e.subxid === e.xid) {
                await dropStreamed(st);
                break;
              }
              const i = st.savepoints.findIndex((x) => x.subxid === e.subxid);
              // A subtransaction with no change applied, or one a rollback already took away.
              if (i < 0 || !st.conn) break;
              await flushStreamed(st);
              await st.conn.query(`ROLLBACK TO SAVEPOINT dbferry_sub_${e.subxid}`);
              Object.assign(st.batch, st.savepoints[i]!.before);
              // The savepoints after it went with it.
              st.savepoints.length = i;
              break;
            }
            case 'stream-commit': {
              const st = streams.get(e.xid);
              await commitMain();
              const position = { commitPosition: e.commitPosition, endPosition: e.endPosition };
              if (!later(e.commitPosition, live.applied!.commitPosition)) {
                // Committed on the target already (a resumed stream).
                await dropStreamed(st);
                break;
              }
              const b = st?.batch ?? newBatch();
              b.transactions = 1;
              if (b.lastChangeTable !== undefined) b.lastChangeAt = e.commitTimeMicros;
              if (st?.conn) {
                await commitOn(st.conn, () => flushStreamed(st), b, position);
                await dropStreamed(st);
              } else {
                // Nothing of it to apply (other tables' changes): it moves the position on the main connection.
                await dropStreamed(st);
                await t.query('BEGIN');
                live.inTarget = true;
                await commitOn(t, flushAll, b, position);
              }
              if (b.marker !== undefined) return result(b.marker);
              break;
            }
            case 'commit': {
              const c = current;
              current = undefined;
              if (skipping) {
                skipping = false;
                break;
              }
              const b = main.batch;
              b.transactions++;
              if (c?.changed) {
                b.lastChangeAt = e.commitTimeMicros;
                b.lastChangeTable = c.changed;
              }
              committed = { commitPosition: e.commitPosition, endPosition: e.endPosition };
              if (b.marker !== undefined || b.changes >= BATCH_CHANGES || Date.now() - b.startedAt >= BATCH_MS) {
                await commitBatch(committed);
                committed = undefined;
                if (b.marker !== undefined) return result(b.marker);
              }
              break;
            }
            default:
              break;
          }
        }
        if (signal?.aborted) throw new CancelledFailure('CDC apply cancelled');
      }
    } catch (err) {
      if (signal?.aborted) throw new CancelledFailure('CDC apply cancelled');
      const code = err instanceof ApplicationFailure ? (err.details?.[0] as { code?: string } | undefined)?.code : (err as { code?: string }).code;
      if (code === LOCK_NOT_AVAILABLE && streamedLocks) throw withoutStreaming('an apply connection waited too long for a lock while a large transaction was being applied');
      if (err instanceof ApplicationFailure) throw err;
      if ((err as { side?: string }).side === 'source') throw engine.failure(err, { doing: 'streaming changes' });
      throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, doing: 'applying changes' });
    } finally {
      stopPolling();
      await dropAllStreamed();
      await stream?.close();
      await closeQuietly(target);
    }
  }, HEARTBEAT_MS);

  function result(markerPosition: EnginePosition): CdcResult {
    return {
      stoppedAt: 'cutover',
      appliedPosition: live.applied?.endPosition ?? '',
      markerPosition,
      transactions: live.transactions,
      changes: live.changes,
      tables: busiest([...totals.values()]),
    };
  }
}

/** A change of a table with a key, for the applier (plain assignments: this runs once per change). */
function keyedChange(m: SourceRowChange, table: ApplyTable, position: EnginePosition): Change {
  if (m.kind === 'insert') return { kind: 'insert', table, position, new: m.new };
  if (m.kind === 'delete') return { kind: 'delete', table, position, old: m.old.tuple };
  const c: Change & { kind: 'update' } = { kind: 'update', table, position, new: m.new };
  if (m.old) c.old = m.old.tuple;
  return c;
}

/** A change of a table without primary key: updates and deletes need the whole old row. */
function keylessChange(m: SourceRowChange, table: string, position: EnginePosition) {
  if (m.kind === 'insert') return { kind: 'insert' as const, new: m.new };
  if (!m.old?.whole) {
    throw ApplicationFailure.create({
      type: FailureType.SchemaChanged,
      nonRetryable: true,
      message: `${table} (no primary key) sent a ${m.kind} at ${position} without its old row: its replica identity is no longer FULL`,
      details: [{ table, hint: `ALTER TABLE ${table} REPLICA IDENTITY FULL on the source (the change is lost to CDC: reload the table), then run dbferry retry` }],
    });
  }
  return m.kind === 'update' ? { kind: 'update' as const, old: m.old.tuple, new: m.new } : { kind: 'delete' as const, old: m.old.tuple };
}

function sum(s: CdcTableStats): number {
  return s.inserts + s.updates + s.deletes + s.truncates;
}

function microsToIso(us: bigint): string {
  const ms = us / 1000n;
  return `${new Date(Number(ms)).toISOString().slice(0, 19)}.${(us % 1_000_000n).toString().padStart(6, '0')}Z`;
}
