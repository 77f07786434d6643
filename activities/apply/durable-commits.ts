import type { Client } from 'pg';
import type { EnginePosition } from '../engine';

/**
 * A commit on the target that is visible but not yet on its disk (synchronous_commit = off, see
 * commitsWithoutWaiting) can still be lost in a crash of the target, together with the progress
 * row of the same transaction; so the source may forget a position only once the target's WAL
 * is flushed past the commit that applied it. This queue holds the commits waiting for that, in
 * commit order.
 */
export class DurableCommits {
  #waiting: Array<{ lsn: bigint; position: EnginePosition }> = [];

  /** Commits applied but not yet known to be on the target's disk. */
  get waiting(): boolean {
    return this.#waiting.length > 0;
  }

  /** A commit whose WAL ends at or before the target's `lsn`; `position` is what it lets the source forget. */
  committed(lsn: bigint, position: EnginePosition): void {
    this.#waiting.push({ lsn, position });
  }

  /**
   * The source may forget up to `position` once the last waiting commit is on disk: nothing was
   * applied since (an idle report, or another table's transactions the stream skipped). False
   * when nothing waits (the caller can confirm `position` at once).
   */
  extend(position: EnginePosition): boolean {
    const last = this.#waiting[this.#waiting.length - 1];
    if (!last) return false;
    last.position = position;
    return true;
  }

  /** The target's WAL is on disk up to `flushLsn`: the furthest position now durable, if any, taken off the queue. */
  flushedTo(flushLsn: bigint): EnginePosition | undefined {
    let durable: EnginePosition | undefined;
    let n = 0;
    while (n < this.#waiting.length && this.#waiting[n]!.lsn <= flushLsn) durable = this.#waiting[n++]!.position;
    if (n > 0) this.#waiting.splice(0, n);
    return durable;
  }
}

/**
 * Commits that do not wait for the target's disk (as PostgreSQL's own subscriptions do: waiting
 * adds the target's fsync latency to every change's lag), when the target can say how far its
 * WAL is flushed (DurableCommits). Otherwise (false) every commit waits, whatever the target's
 * own default, since the source is told at once: also when the target replicates synchronously,
 * where its local flush would not say that a standby it fails over to has the commit.
 */
export async function commitsWithoutWaiting(c: Client): Promise<boolean> {
  let flushKnown = false;
  try {
    const r = await c.query<{ standbys: string }>(
      "SELECT current_setting('synchronous_standby_names') AS standbys, pg_current_wal_insert_lsn(), pg_current_wal_flush_lsn()",
    );
    flushKnown = r.rows[0]!.standbys.trim() === '';
  } catch {
    // An engine without these functions: commits wait.
  }
  await c.query(`SET synchronous_commit = ${flushKnown ? 'off' : 'on'}`);
  return flushKnown;
}
