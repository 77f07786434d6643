import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import type { CleanupResult, MigrationRef } from '../../plan/migration-types';
import { grantsAsked, type Plan } from '../../plan/plan-schema';
import type { SchemaModel, SequenceModel, TableModel } from '../../plan/schema-model';
import { qualifiedTable } from '../../plan/sql-names';
import type { ChangeSource, EnginePosition, SourceEngine } from '../engine';
import { resolveEndpoint, withConnection, type PgEndpoint } from '../pg/connection';
import { toFailure } from '../pg/errors';
import { dropOwnedPublication, ensurePublication } from './cdc/publication';
import { createSlot, dropSlot } from './cdc/replication';
import { MARKER_PREFIX, openPgChangeStream } from './change-stream';
import { sampleKeys, tableExtents } from './extents';
import { introspectPostgres } from './introspect';
import { dumpSchemaObjects } from './schema-objects';
import { formatLsn } from './lsn';
import { lsnOf, pgPosition } from './position';
import { holdPgReadPoint, joinPgReadPoint, openPgReader } from './read-point';
import { refuseKeylessTables } from './keyless-tables';
import { tableSelector } from './selection';
import { preflightPgSource } from './source-preflight';

/** The PostgreSQL source engine: snapshots, COPY out, record-hash checksums, pgoutput CDC through a slot. */
export async function postgresEngine(plan: Plan): Promise<SourceEngine> {
  return new PostgresEngine(plan, await resolveEndpoint(plan, 'source'));
}

class PostgresEngine implements SourceEngine {
  readonly name = 'postgres' as const;
  readonly description: string;
  readonly cdc: ChangeSource;

  constructor(
    private readonly plan: Plan,
    private readonly src: PgEndpoint,
  ) {
    this.description = src.description;
    this.cdc = new PostgresChanges(plan, src);
  }

  preflight() {
    return preflightPgSource(this.src, this.plan);
  }

  failure(err: unknown, ctx: { table?: string; doing: string }) {
    return toFailure(err, 'source', { endpoint: this.src.description, secrets: this.src.secrets, ...ctx });
  }

  async introspect(opts: { objects?: boolean } = {}): Promise<SchemaModel> {
    const model = await withConnection(this.src, 'introspect', (c) => introspectPostgres(c, tableSelector(this.plan)));
    if (!opts.objects) return model;
    const { objects } = await dumpSchemaObjects(this.src, this.plan.source.tls, model.schemas, tableSelector(this.plan), { grants: grantsAsked(this.plan) });
    return { ...model, objects };
  }

  extents(tables: TableModel[]) {
    return withConnection(this.src, 'plan the load', (c) => tableExtents(c, tables));
  }

  sampleKeys(table: TableModel, extent: Parameters<SourceEngine['sampleKeys']>[1], chunks: number) {
    return withConnection(this.src, 'plan the load', (c) => sampleKeys(c, table, extent, chunks));
  }

  holdReadPoint(opts: { forCdc: boolean; tables: TableModel[]; migration: MigrationRef }) {
    return holdPgReadPoint(this.src, { ...opts, slot: this.plan.cdc.slot, publication: this.plan.cdc.publication });
  }

  joinReadPoint(token: string) {
    return joinPgReadPoint(this.src, token, { changesReplayed: this.plan.mode === 'full-load-and-cdc' });
  }

  openReader() {
    return openPgReader(this.src, 'validate');
  }

  /**
   * The sequences as they are now (sequences are not transactional, so "now" is at least the
   * snapshot's): last_value and is_called of each.
   */
  async sequenceStates(sequences: SequenceModel[]): Promise<SequenceModel[]> {
    if (sequences.length === 0) return [];
    return withConnection(this.src, 'sequences', async (c) => {
      const out: SequenceModel[] = [];
      for (const s of sequences) {
        const r = await c.query<{ last_value: string; is_called: boolean }>(`SELECT last_value::text, is_called FROM ${qualifiedTable(s.schema, s.name)}`);
        const row = r.rows[0];
        out.push(row ? { ...s, lastValue: row.last_value, isCalled: row.is_called } : s);
      }
      return out;
    });
  }
}

/** pgoutput CDC: a publication of the selected tables and a logical slot that keeps their changes. */
class PostgresChanges implements ChangeSource {
  readonly marksInStream = true;
  /** pgoutput carries the rows foreign-key actions changed, like any other change. */
  readonly sendsCascadedChanges = true;
  constructor(
    private readonly plan: Plan,
    private readonly src: PgEndpoint,
  ) {}

  private get slot() {
    return this.plan.cdc.slot;
  }

  private get publication() {
    return this.plan.cdc.publication;
  }

  async prepare(opts: { model: SchemaModel; migration: MigrationRef; afterLoad: boolean; startPosition?: string }) {
    const { src, slot } = this;
    const state = await withConnection(src, 'prepare CDC', async (c) => {
      await refuseKeylessTables(c, opts.model, src);
      const pub = await ensurePublication(c, this.publication, opts.model.tables, opts.migration, src.description, { afterSlot: opts.afterLoad });
      const r = await c.query<{ confirmed: string | null; plugin: string; database: string }>(
        'SELECT confirmed_flush_lsn::text AS confirmed, plugin, database FROM pg_replication_slots WHERE slot_name = $1',
        [slot],
      );
      return { pub, slot: r.rows[0] };
    });
    if (state.slot && (state.slot.plugin !== 'pgoutput' || state.slot.database !== src.database)) {
      throw ApplicationFailure.create({
        type: FailureType.TargetObjectConflict,
        nonRetryable: true,
        message: `${src.description}: replication slot ${slot} exists but belongs to ${state.slot.plugin} on database ${state.slot.database}`,
        details: [{ hint: `name another cdc.slot in the plan, or drop slot ${slot} on the source if it is not in use, then run dbferry retry` }],
      });
    }
    let confirmed = state.slot?.confirmed ?? undefined;
    if (!state.slot) {
      if (opts.afterLoad) {
        // The load ran inside the slot's snapshot: without that slot, changes since are gone.
        throw ApplicationFailure.create({
          type: FailureType.SourceObjectMissing,
          nonRetryable: true,
          message: `${src.description}: replication slot ${slot}, created with the load's snapshot, no longer exists: changes made since the load cannot be recovered`,
          details: [{ hint: 'abort this migration and start it again (the target tables must be dropped first)' }],
        });
      }
      confirmed = formatLsn(await createSlot(src, slot));
    }
    const slotStart = lsnOf(confirmed!);
    const asked = opts.startPosition ? lsnOf(opts.startPosition) : undefined;
    if (asked !== undefined && asked < slotStart) {
      throw ApplicationFailure.create({
        type: FailureType.SourceObjectMissing,
        nonRetryable: true,
        message: `${src.description}: cdc.startPosition ${opts.startPosition} is before slot ${slot}'s start ${confirmed}: the changes in between are no longer available`,
        details: [{ hint: 'load the target again from a later point, or remove cdc.startPosition to start from the slot' }],
      });
    }
    const resources = [`replication slot ${slot}`, `publication ${this.publication}${state.pub.existed && !state.pub.ownedByDbferry ? ' (it existed before: kept)' : ''}`];
    const start = asked ?? slotStart;
    return { start: pgPosition(start), appliedThrough: pgPosition(start > 0n ? start - 1n : 0n), resources };
  }

  open(from: EnginePosition, model: SchemaModel, opts?: { streaming?: boolean }) {
    return openPgChangeStream(this.src, { slot: this.slot, publication: this.publication, from, model, streaming: opts?.streaming ?? false });
  }

  compare(a: EnginePosition, b: EnginePosition): number {
    const x = lsnOf(a);
    const y = lsnOf(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }

  distance(from: EnginePosition, to: EnginePosition): bigint {
    return lsnOf(to) - lsnOf(from);
  }

  async now(): Promise<string> {
    return withConnection(this.src, 'cutover', async (c) => (await c.query<{ now: string }>('SELECT clock_timestamp()::text AS now')).rows[0]!.now);
  }

  /** Waits until the slot has confirmed the source's current position: the applier has seen everything written before now. */
  async waitConfirmed(timeoutMs: number): Promise<void> {
    const { src, slot } = this;
    await withConnection(src, 'cutover', async (c) => {
      const lsn = (await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const r = await c.query<{ ok: boolean | null; behind: string | null }>(
          `SELECT confirmed_flush_lsn >= $2::pg_lsn AS ok, pg_wal_lsn_diff($2::pg_lsn, confirmed_flush_lsn)::text AS behind
             FROM pg_replication_slots WHERE slot_name = $1`,
          [slot, lsn],
        );
        const row = r.rows[0];
        if (!row) throw refused(`${src.description}: replication slot ${slot} does not exist`, 'the migration cannot cut over without its slot; abort it');
        if (row.ok) return;
        if (Date.now() > deadline) {
          throw refused(
            `CDC is ${row.behind} bytes behind the source after ${timeoutMs / 1000} s: writes may still be arriving`,
            'wait until dbferry status shows CDC caught up, then run dbferry cutover again',
          );
        }
        await sleep(250);
      }
    });
  }

  async writeMarker(content: string): Promise<EnginePosition> {
    return withConnection(this.src, 'cutover', async (c) => {
      const r = await c.query<{ lsn: string }>('SELECT pg_logical_emit_message(true, $1, $2)::text AS lsn', [MARKER_PREFIX, content]);
      return pgPosition(r.rows[0]!.lsn);
    });
  }

  /** Removes the slot and dbferry's publication (a forgotten slot keeps WAL until the disk fills). */
  async cleanup(migration: MigrationRef): Promise<CleanupResult> {
    const { src, slot, publication } = this;
    const out: CleanupResult = { dropped: [], kept: [] };
    const dropped = await withConnection(src, 'drop slot and publication', async (c) => ({
      slot: await dropSlot(c, slot),
      publication: await dropOwnedPublication(c, publication, migration),
    }));
    if (dropped.slot) out.dropped.push(`${src.description}: replication slot ${slot}`);
    else out.kept.push(`${src.description}: no replication slot ${slot} (none left)`);
    if (dropped.publication === 'dropped') out.dropped.push(`${src.description}: publication ${publication}`);
    else if (dropped.publication === 'not-ours') out.kept.push(`${src.description}: publication ${publication} (it existed before this migration)`);
    else out.kept.push(`${src.description}: no publication ${publication} (none left)`);
    return out;
  }
}

/** A refusal the operator must act on: cutover is not possible now, and nothing was changed. */
function refused(message: string, hint: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.CutoverRefused, nonRetryable: true, message, details: [{ hint }] });
}

