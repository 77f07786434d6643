import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import { mysqlStartKind } from '../../plan/supported';
import type { CleanupResult, MigrationRef } from '../../plan/migration-types';
import type { SchemaModel } from '../../plan/schema-model';
import type { ChangeSource, ChangeStream, EnginePosition, PreparedCdc } from '../engine';
import { openMysqlChangeStream, resolveGtidStart } from './binlog-stream';
import { masterPosition } from './reader';
import { withMysql, type MysqlEndpoint } from './connection';
import { compareMysqlPositions, mysqlPosition, parseMysqlPosition } from './position';

/**
 * CDC from a MySQL/MariaDB binlog. Nothing is created on the source: dbferry reads the binlog as
 * a replica would, from the position the target's progress row holds. The server does not keep
 * the binlog for dbferry (there is no slot): it purges by its own retention, which preflight
 * weighs and a purged position names.
 *
 * The binlog has no room for a marker dbferry could write without privileges on the source's
 * data (a logical message, as PostgreSQL has): cutover stops the applier at a position instead
 * (`marksInStream` false), the source's position once its writes have stopped.
 */
export class MysqlChanges implements ChangeSource {
  readonly marksInStream = false;
  /** InnoDB's cascaded changes are not in the binlog: the target's foreign keys must act. */
  readonly sendsCascadedChanges = false;

  constructor(
    private readonly ep: MysqlEndpoint,
    private readonly serverId: number,
  ) {}

  async prepare(opts: { model: SchemaModel; migration: MigrationRef; afterLoad: boolean; startPosition?: string; loadPositions?: EnginePosition[]; resumeAt?: EnginePosition }): Promise<PreparedCdc> {
    const { ep } = this;
    return withMysql(ep, 'prepare CDC', async (c) => {
      let start: EnginePosition;
      if (opts.resumeAt) {
        start = opts.resumeAt;
      } else if (opts.afterLoad) {
        // Every table was read at this position or later (one read point: all the same);
        // changes a later table already has are applied again, idempotently, by key.
        const positions = (opts.loadPositions ?? []).filter((p) => p.startsWith('mysql:'));
        if (positions.length === 0) {
          throw ApplicationFailure.create({
            type: FailureType.SourceObjectMissing,
            nonRetryable: true,
            message: `${ep.description}: the load recorded no binlog position (was the binary log off, or the user without BINLOG MONITOR / REPLICATION CLIENT?): CDC cannot know where the load's rows end`,
            details: [{ hint: 'turn the binary log on and grant REPLICATION CLIENT, then abort and start the migration again so the load records its position' }],
          });
        }
        start = positions.sort(compareMysqlPositions)[0]!;
      } else if (opts.startPosition && mysqlStartKind(opts.startPosition) === 'gtid') {
        start = await resolveGtidStart(ep, opts.startPosition.trim(), this.serverId);
      } else if (opts.startPosition) {
        start = startPositionOf(opts.startPosition, ep.description);
      } else {
        start = await masterPosition(c);
      }
      const [logs] = await c.query('SHOW BINARY LOGS');
      const files = (logs as Array<{ Log_name: string }>).map((r) => r.Log_name);
      const p = parseMysqlPosition(start);
      if (!files.includes(p.file)) {
        const [v] = await c.query("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('binlog_expire_logs_seconds', 'expire_logs_days')");
        const retention = (v as Array<{ Variable_name: string; Value: string }>).map((x) => `${x.Variable_name}=${x.Value}`).join(', ');
        throw ApplicationFailure.create({
          type: FailureType.SourceObjectMissing,
          nonRetryable: true,
          message: `${ep.description}: the binlog at ${p.file}:${p.offset}, where CDC must start, is no longer on the server (oldest: ${files[0] ?? 'none'}; retention ${retention || 'unknown'}): the changes since the load are lost to CDC`,
          details: [{ hint: 'raise the source\'s binlog retention above the load\'s duration, then abort and start the migration again (it reloads the tables)' }],
        });
      }
      return { start, appliedThrough: start, resources: [`binlog read from ${p.file}:${p.offset} as replica server_id ${this.serverId} (nothing is created on the source)`] };
    });
  }

  open(from: EnginePosition, model: SchemaModel): Promise<ChangeStream> {
    return openMysqlChangeStream(this.ep, { from, model, serverId: this.serverId });
  }

  compare(a: EnginePosition, b: EnginePosition): number {
    return compareMysqlPositions(a, b);
  }

  /** Within one file, the bytes between; across files, at least the offset into the later one. */
  distance(from: EnginePosition, to: EnginePosition): bigint {
    const a = parseMysqlPosition(from);
    const b = parseMysqlPosition(to);
    if (compareMysqlPositions(from, to) >= 0) return 0n;
    return a.file === b.file ? b.offset - a.offset : b.offset;
  }

  /**
   * The source's clock, as the next whole second: binlog events carry whole seconds, so a change
   * stamped with this very second may have committed before the check began (an application
   * that stopped writing a moment ago would be refused). Counting from the next second, writes
   * that go on are still seen (the quiet period spans two more whole seconds), and a last one
   * within this second is before the marker, so CDC applies it.
   */
  async now(): Promise<string> {
    return withMysql(this.ep, 'cutover', async (c) => {
      const [r] = await c.query("SELECT DATE_FORMAT(UTC_TIMESTAMP() + INTERVAL 1 SECOND, '%Y-%m-%d %H:%i:%s+00') AS now");
      return (r as Array<{ now: string }>)[0]!.now;
    });
  }

  /** Waits until the applier's progress reaches the end of the source's binlog as it is now. */
  async waitConfirmed(timeoutMs: number, applied: () => Promise<EnginePosition | undefined>): Promise<void> {
    const target = await withMysql(this.ep, 'cutover', (c) => masterPosition(c));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const a = await applied();
      if (a && compareMysqlPositions(a, target) >= 0) return;
      if (Date.now() > deadline) {
        throw ApplicationFailure.create({
          type: FailureType.CutoverRefused,
          nonRetryable: true,
          message: `CDC has not caught up with the source within ${Math.round(timeoutMs / 1000)} s (applied ${a ?? 'nothing'}, source at ${target})`,
          details: [{ hint: 'wait until dbferry status shows CDC caught up, then run dbferry cutover again' }],
        });
      }
      await sleep(500);
    }
  }

  /** The position cutover stops the applier at: the end of the binlog once writes have stopped. */
  async writeMarker(): Promise<EnginePosition> {
    return withMysql(this.ep, 'cutover', (c) => masterPosition(c));
  }

  async cleanup(_m: MigrationRef): Promise<CleanupResult> {
    return { dropped: [], kept: [`${this.ep.description}: nothing to remove (binlog CDC creates nothing on the source)`] };
  }
}

/** `cdc.startPosition` for a MySQL source: `binlog.000012:4567` (as SHOW MASTER STATUS gives it). */
export function startPositionOf(text: string, where: string): EnginePosition {
  const t = text.trim().replace(/^mysql:/, '');
  if (mysqlStartKind(t) !== 'file') {
    throw ApplicationFailure.create({
      type: FailureType.Unsupported,
      nonRetryable: true,
      message: `${where}: cdc.startPosition ${JSON.stringify(text)} is neither a binlog file:offset such as binlog.000012:4567 nor a GTID set`,
      details: [{ hint: 'give the File and Position SHOW MASTER STATUS printed when the target was loaded' }],
    });
  }
  const at = t.lastIndexOf(':');
  return mysqlPosition(t.slice(0, at), t.slice(at + 1));
}
