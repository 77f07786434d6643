import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { Connection } from 'mysql2/promise';
import { FailureType } from '../../plan/failure-types';
import { ReadPointGone, type HeldReadPoint, type SourceReader } from '../engine';
import { closeMysql, connectMysql, mysqlFailure, type MysqlEndpoint } from './connection';
import { beginSnapshot, openMysqlReader, type MysqlReader } from './reader';

/**
 * A MySQL read point shared by loaders. MySQL cannot hand a snapshot to another session (as
 * PostgreSQL exports one), so the holder opens every loader's snapshot itself: under a brief
 * FLUSH TABLES WITH READ LOCK no transaction commits, so snapshots opened then all see the
 * same transactions, at one binlog position (mydumper does the same). The snapshots live in
 * the holder's process; loaders there borrow one each (the workflow schedules them on the
 * holder's worker; one that lands elsewhere is refused and scheduled again). When the source
 * refuses the lock (no RELOAD privilege, as on some managed services), each loader opens its
 * own snapshot and the ledger records the position it read at: every table is consistent in
 * itself, and a table planned in key ranges is refused (its ranges need one read point).
 */

/** How long the lock may wait for a running statement; every statement on the source queues behind it meanwhile. */
const LOCK_WAIT_S = 5;
const LOCK_ATTEMPTS = 3;
/** A borrowed snapshot comes back within this (an overlapping retry of a task); else the loader opens its own. */
const BORROW_WAIT_MS = 30_000;
const KEEPALIVE_MS = 5_000;

const TOKEN_PREFIX = 'mysql-shared:';
/** The token of a read point without shared snapshots: each loader opens its own. */
const OWN_SNAPSHOTS = 'mysql-own-snapshots';

/** Shared read points held in this process, by token. */
const pools = new Map<string, SnapshotPool>();

class SnapshotPool {
  readonly idle: MysqlReader[] = [];
  lost?: string;
  constructor(
    readonly token: string,
    private live: number,
  ) {}

  /** A reader whose session broke (a copy cut off mid-stream) cannot rejoin the snapshot: it is closed. */
  drop(r: MysqlReader): void {
    this.live--;
    void r.close();
    if (this.live === 0) this.lost = 'every shared snapshot connection was lost';
  }

  async closeAll(): Promise<void> {
    pools.delete(this.token);
    this.lost ??= 'released';
    await Promise.all(this.idle.splice(0).map((r) => r.close()));
  }
}

/**
 * Opens `size` snapshots at one position under a brief global read lock and keeps them for the
 * loaders of this process. Without the RELOAD privilege the read point is `OWN_SNAPSHOTS`.
 */
export async function holdMysqlReadPoint(ep: MysqlEndpoint, size: number): Promise<HeldReadPoint> {
  // Connected before the lock, so that it lasts only as long as beginning the transactions.
  const opened = await Promise.allSettled([connectMysql(ep, 'read point lock'), ...Array.from({ length: size }, () => connectMysql(ep, 'load'))]);
  const conns = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
  const failed = opened.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failed) {
    await Promise.all(conns.map((c) => closeMysql(c)));
    throw failed.reason;
  }
  const [lock, ...sessions] = conns as [Connection, ...Connection[]];
  let readers: MysqlReader[] = [];
  let lockMs = 0;
  let gtid: string | undefined;
  try {
    await lock.query(`SET SESSION lock_wait_timeout = ${LOCK_WAIT_S}`);
    const locked = await takeReadLock(lock, ep);
    if (!locked) {
      await Promise.all(sessions.map((c) => closeMysql(c)));
      return await ownSnapshots(ep, lock);
    }
    const started = Date.now();
    try {
      const begun = await Promise.allSettled(sessions.map((c) => beginSnapshot(c, ep, 'load')));
      readers = begun.flatMap((b) => (b.status === 'fulfilled' ? [b.value] : []));
      const refused = begun.find((b): b is PromiseRejectedResult => b.status === 'rejected');
      if (refused) throw refused.reason;
      gtid = await gtidPosition(lock);
    } finally {
      await lock.query('UNLOCK TABLES').catch(() => undefined);
      lockMs = Date.now() - started;
    }
    await closeMysql(lock);
  } catch (err) {
    // Every session opened is closed: one left open would hold its snapshot (and the undo log) for good.
    await Promise.all([...readers.map((r) => r.close()), ...sessions.map((c) => closeMysql(c)), closeMysql(lock)]);
    throw mysqlFailure(err, ep, { doing: 'taking the load read point' });
  }
  const position = readers[0]!.position;
  if (readers.some((r) => r.position !== position)) {
    await Promise.all(readers.map((r) => r.close()));
    throw ApplicationFailure.create({
      type: FailureType.Transient,
      message: `${ep.description}: the snapshots opened under the read lock stand at different binlog positions (${[...new Set(readers.map((r) => r.position))].join(', ')})`,
    });
  }
  const pool = new SnapshotPool(`${TOKEN_PREFIX}${randomUUID()}`, readers.length);
  pool.idle.push(...readers);
  pools.set(pool.token, pool);
  return {
    token: pool.token,
    position,
    forCdc: false,
    holderProcessOnly: true,
    describe: `one read point for every table at ${position.replace(/^mysql:/, '')}${gtid ? ` (GTID ${gtid})` : ''} (${size} snapshot${size > 1 ? 's' : ''} opened under FLUSH TABLES WITH READ LOCK; source commits paused ${lockMs} ms)`,
    watch: async (signal?: AbortSignal) => {
      // Idle snapshots are pinged so that no timeout on the way closes them.
      while (!signal?.aborted) {
        await sleep(KEEPALIVE_MS, undefined, { signal }).catch(() => undefined);
        if (pool.lost) break;
        // Out of the pool while pinged; a dead one is dropped, the others serve on.
        const idle = pool.idle.splice(0);
        await Promise.all(idle.map((r) => r.ping().then((ok) => (ok ? pool.idle.push(r) : pool.drop(r)))));
      }
      if (pool.lost && !signal?.aborted) {
        throw ApplicationFailure.create({ type: FailureType.Transient, message: `${ep.description}: the load read point is lost (${pool.lost}); taking a new one` });
      }
    },
    release: () => pool.closeAll(),
  };
}

/**
 * The GTID set of the read point, read under the lock (binlog CDC may start from it on a
 * server that uses GTIDs): MariaDB's gtid_binlog_pos, MySQL's gtid_executed; undefined when
 * the server has none or the user may not read it.
 */
async function gtidPosition(lock: Connection): Promise<string | undefined> {
  for (const v of ['@@GLOBAL.gtid_binlog_pos', '@@GLOBAL.gtid_executed']) {
    try {
      const [r] = await lock.query(`SELECT ${v} AS g`);
      const g = String((r as Array<{ g: unknown }>)[0]?.g ?? '').replace(/\s+/g, '');
      if (g) return g;
    } catch {
      // Not this server's variable.
    }
  }
  return undefined;
}

/** FLUSH TABLES WITH READ LOCK; false when the source does not allow it (no RELOAD privilege). */
async function takeReadLock(lock: Connection, ep: MysqlEndpoint): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await lock.query('FLUSH TABLES WITH READ LOCK');
      return true;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ER_SPECIFIC_ACCESS_DENIED_ERROR' || code === 'ER_DBACCESS_DENIED_ERROR' || code === 'ER_ACCESS_DENIED_ERROR') return false;
      if (code !== 'ER_LOCK_WAIT_TIMEOUT') throw err;
      if (attempt >= LOCK_ATTEMPTS) {
        throw ApplicationFailure.create({
          type: FailureType.Transient,
          message: `${ep.description}: FLUSH TABLES WITH READ LOCK waited ${LOCK_WAIT_S} s for a running write ${LOCK_ATTEMPTS} times (a long statement or DDL on the source); trying again`,
          details: [{ hint: 'find the long-running statement in SHOW PROCESSLIST on the source' }],
        });
      }
      await sleep(2_000);
    }
  }
}

/** No global lock: loaders open their own snapshots; the position is where the source stands now. */
async function ownSnapshots(ep: MysqlEndpoint, lock: Connection): Promise<HeldReadPoint> {
  const probe = await beginSnapshot(lock, ep, 'read point');
  const position = probe.position;
  await probe.close();
  return {
    token: OWN_SNAPSHOTS,
    position,
    forCdc: false,
    describe: `each load task read in its own snapshot from ${position.replace(/^mysql:/, '')} on (the source refused FLUSH TABLES WITH READ LOCK: grant RELOAD for one read point): every table is consistent in itself, not with the others`,
    watch: async (signal?: AbortSignal) => {
      await new Promise<void>((resolve) => (signal?.aborted ? resolve() : signal?.addEventListener('abort', () => resolve())));
    },
    release: async () => undefined,
  };
}

/**
 * A reader in the read point `token`: a shared snapshot borrowed from this process's pool, or,
 * when the read point has no shared snapshots, a snapshot of its own (its `readPoint` then says
 * where it reads, for the ledger). A shared read point not in this process has gone (released,
 * or its process restarted under the same queue): the loader waits for the next one.
 */
export async function joinMysqlReadPoint(ep: MysqlEndpoint, token: string): Promise<SourceReader> {
  if (!token.startsWith(TOKEN_PREFIX)) return ownReader(ep);
  const pool = pools.get(token);
  if (!pool) throw new ReadPointGone(`the read point ${token} is not held in this process`);
  const deadline = Date.now() + BORROW_WAIT_MS;
  for (;;) {
    if (pool.lost) throw new ReadPointGone(`the read point ${token} is lost (${pool.lost})`);
    const r = pool.idle.pop();
    if (r) return borrowed(pool, r);
    if (Date.now() > deadline) {
      // More loaders here than snapshots (overlapping attempts of a task): this one tries again later.
      throw ApplicationFailure.create({ type: FailureType.Transient, message: `${ep.description}: no snapshot of the load read point came free in ${BORROW_WAIT_MS / 1000} s` });
    }
    await sleep(200);
  }
}

/**
 * A snapshot of the loader's own. Its token is unique (two snapshots may report one position,
 * e.g. with the binlog off), and it refuses a key range: ranges read in different snapshots
 * would hold a state that never existed.
 */
async function ownReader(ep: MysqlEndpoint): Promise<SourceReader> {
  const r = await openMysqlReader(ep, 'load');
  return {
    readPoint: { token: `mysql-own:${randomUUID()}`, position: r.position },
    copyOut: async (t, range, format) => {
      if (range.kind !== 'whole') {
        throw ApplicationFailure.create({
          type: FailureType.PermissionDenied,
          nonRetryable: true,
          message: `${ep.description}: ${t.schema}.${t.name} is planned in key ranges (load.chunkRows), which need one read point, but the source refused FLUSH TABLES WITH READ LOCK`,
          details: [{ table: `${t.schema}.${t.name}`, hint: 'grant RELOAD to the source user, then run dbferry retry' }],
        });
      }
      return r.copyOut(t, range, format);
    },
    checksum: (...a) => r.checksum(...a),
    close: () => r.close(),
  };
}

/** The pool's reader, returned on close while its session is still in the snapshot. */
function borrowed(pool: SnapshotPool, r: MysqlReader): SourceReader {
  let returned = false;
  return {
    copyOut: (...a) => r.copyOut(...a),
    checksum: (...a) => r.checksum(...a),
    close: async () => {
      if (returned) return;
      returned = true;
      if (pool.lost === 'released') await r.close();
      else if (r.healthy()) pool.idle.push(r);
      else pool.drop(r);
    },
  };
}
