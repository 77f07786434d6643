/**
 * The source-engine seam. Every source database (PostgreSQL today, MySQL/MariaDB next) is one
 * folder under activities/ whose engine implements this interface; the runner's activities and
 * the engine-neutral CDC loop (activities/apply/) see only this, and the PostgreSQL target
 * (activities/target/) sees only neutral values: the schema model, COPY streams, checksums and
 * changes. Modelled on kysely's Dialect: one small interface, one folder per engine, a registry
 * (activities/index.ts) that picks the engine by `source.engine`.
 *
 * Positions are opaque to everything outside the engine: an `EnginePosition` is text
 * `<engine>:<position>` (PostgreSQL: `postgres:0/16B3748`; MySQL: a binlog file:offset or GTID
 * set) that only the engine parses and orders (`comparePositions`).
 */
import type { Readable } from 'node:stream';
import type { ApplicationFailure } from '@temporalio/common';
import type { CleanupResult, EndpointInfo, Finding, MigrationRef } from '../plan/migration-types';
import type { Plan } from '../plan/plan-schema';
import type { SchemaModel, SequenceModel, TableModel } from '../plan/schema-model';
import type { ChunkRange, TableExtent } from '../plan/load-chunks';
import type { Tuple } from './apply/tuple';

export type SourceEngineName = Plan['source']['engine'];

/** `<engine>:<engine-specific position>`; ordered by the engine that wrote it. */
export type EnginePosition = string;

/** A consistent read point loaders on any worker can join: a snapshot and where CDC starts. */
export interface ReadPoint {
  /** The engine's token for joining it (PostgreSQL: an exported snapshot id). */
  token: string;
  /** Changes committed after this position are not in the read point. */
  position: EnginePosition;
  /** The engine holds CDC's starting point together with this read point (no gap between load and CDC). */
  forCdc: boolean;
  /** How it was taken, in words for the report, where the engine has more to say than its position. */
  describe?: string;
  /** Only loaders in the holder's process can join it (MySQL keeps the snapshots it opened there). */
  holderProcessOnly?: boolean;
}

/** A read point kept alive by one activity; it ends with `release()` or with the connection. */
export interface HeldReadPoint extends ReadPoint {
  /** Rejects when the read point is lost (its connection died): loaders must move to a new one. */
  watch(signal?: AbortSignal): Promise<void>;
  release(): Promise<void>;
}

/** How rows travel from source to target: PostgreSQL COPY text or binary. */
export type RowFormat = 'text' | 'binary';

/**
 * How a row count and checksum were computed; the target computes the same over its rows.
 * `canonical-md5`: values of another engine in one canonical text form (cross-engine/canonical.ts).
 * `copy-hash`: summed by the loader on the COPY stream it copied (pg/copy-hash.ts), so the
 * source is read once; the target sums a COPY of the same columns in the same format.
 */
export type ChecksumMethod = 'record-hash' | 'text-hash' | 'canonical-md5' | 'copy-hash';

export interface TableChecksum {
  rows: string;
  /** Order-independent; undefined when only counted. */
  checksum?: string;
  method: ChecksumMethod;
}

/** Rows for COPY; once they have all been read, what was converted on the way, if anything. */
export interface CopyOut extends Readable {
  /** Values the engine had to change, in words (`2 zero dates in dt written as NULL`); undefined when none. */
  conversions?(): string | undefined;
}

/** A reader inside one read point (or, with `readPoint` undefined, reading the source as it is now). */
export interface SourceReader {
  /**
   * copyOut streams PostgreSQL's own COPY output of the values (no conversion on the way), so a
   * loader may sum it as it passes (`copy-hash`) instead of reading the source a second time.
   */
  readonly copyHashable?: boolean;
  /**
   * Where this reader reads when it is not the joined read point itself: an engine that cannot
   * share a snapshot with every loader (MySQL) opens one of its own, and the ledger records it.
   */
  readonly readPoint?: { token: string; position: EnginePosition };
  /**
   * Rows of a table or a chunk of it, in the form the PostgreSQL target ingests, with
   * back-pressure. Refuses (a typed failure naming the table) when the read point can no longer
   * see the table's rows, e.g. the table was rewritten after it.
   */
  copyOut(table: TableModel, range: ChunkRange, format: RowFormat): Promise<CopyOut>;
  /** Row count and checksum over normalized values, in the same read point as copyOut. */
  checksum(table: TableModel, range: ChunkRange, withChecksum: boolean): Promise<TableChecksum>;
  close(): Promise<void>;
}

/** Thrown by `joinReadPoint` when the read point's holder has gone: wait for the next generation. */
export class ReadPointGone extends Error {}

/** A row change as the source sends it; the applier binds `relationId` to a target table. */
export type SourceRowChange =
  | { kind: 'insert'; relationId: number; new: Tuple }
  /** `old`: the key, or the whole old row (`whole`) when the key changed or the table has no key. */
  | { kind: 'update'; relationId: number; old?: { whole: boolean; tuple: Tuple }; new: Tuple }
  | { kind: 'delete'; relationId: number; old: { whole: boolean; tuple: Tuple } };

/**
 * What a change stream produces, in source commit order: whole transactions (begin … commit),
 * and, from a stream opened with `streaming`, large transactions in pieces while they run
 * (stream-start … stream-stop, then stream-commit or stream-abort in commit order). Inside a
 * piece, relation, change, truncate and marker events carry `xid`, the source (sub)transaction.
 */
export type ChangeEvent =
  | { kind: 'begin'; commitPosition: EnginePosition; commitTimeMicros: bigint }
  /**
   * The source has sent everything up to `position` (what lies between touched no table of the
   * stream): with nothing pending, the consumer may confirm it. In stream order, like every
   * event, so it never passes a change the consumer has not applied yet.
   */
  | { kind: 'idle'; position: EnginePosition }
  | (InTransaction & { xid?: number })
  | { kind: 'commit'; commitPosition: EnginePosition; endPosition: EnginePosition; commitTimeMicros: bigint }
  /** `first`: the transaction's first piece (a later one continues what came before). */
  | { kind: 'stream-start'; xid: number; first: boolean }
  | { kind: 'stream-stop' }
  | { kind: 'stream-commit'; xid: number; commitPosition: EnginePosition; endPosition: EnginePosition; commitTimeMicros: bigint }
  /** `subxid` = `xid`: the whole streamed transaction rolled back; else that subtransaction (and what it began). */
  | { kind: 'stream-abort'; xid: number; subxid: number };

type InTransaction =
  /** A table's current shape, sent before its first change and again after it changed (DDL policy). */
  | { kind: 'relation'; relation: SourceRelation }
  | { kind: 'change'; change: SourceRowChange; position: EnginePosition }
  | { kind: 'truncate'; relationIds: number[]; restartIdentity: boolean; position: EnginePosition }
  | { kind: 'marker'; content: string; position: EnginePosition };

/** A source table's columns as the change stream describes them. */
export interface SourceRelation {
  id: number;
  schema: string;
  name: string;
  /** Changes carry the whole old row (a table without a primary key needs that). */
  fullIdentity: boolean;
  columns: SourceRelationColumn[];
}

export interface SourceRelationColumn {
  name: string;
  /** The column's type as the PostgreSQL target names it. */
  type: string;
  notNull: boolean;
  /** The default, when existing source rows already read it without a rewrite (a constant). */
  storedDefault?: string;
  /** Its default rewrote every source row outside the stream (volatile): not appliable. */
  volatileDefault: boolean;
}

/**
 * The events in batches: each one what the source had sent when the consumer asked, in stream
 * order, never empty. A backlog of a million changes is a million events; handed over one by
 * one, the promises and turns of the event loop per event cost the worker more CPU than
 * applying them (bench/README.md, "A batched change stream").
 */
export interface ChangeStream extends AsyncIterable<ChangeEvent[]> {
  /** Everything up to here is durable on the target: the source may forget it. */
  confirm(position: EnginePosition): void;
  /** The source's newest position this stream has heard of. */
  sourcePosition(): EnginePosition | undefined;
  /** Asks the source where it stands and what it retains for this stream (read on a timer). */
  state(): Promise<SourceCdcState>;
  close(): Promise<void>;
}

/** Source-side state of CDC, read on a timer for lag and alarms. */
export interface SourceCdcState {
  position: EnginePosition;
  /** Bytes the source keeps for this migration (PostgreSQL: WAL retained by the slot). */
  retainedBytes: number;
  /** Words for an alert about the retained bytes (`replication slot x holds …`). */
  retainedBy: string;
  /**
   * Tables attached to or detached from a migrated parent since the model was recorded
   * (PostgreSQL partitions and inheritance children), in words: DDL the applier does not follow,
   * which pauses CDC like any other schema change.
   */
  structureChanged?: string[];
}

export interface SourceEngine {
  readonly name: SourceEngineName;
  /** `source <engine>/<host:port>/<database>`: no credentials, safe for history and messages. */
  readonly description: string;

  /** Version, the selected tables and what stands in the way, checked before anything is written. */
  preflight(opts: { cdc: boolean }): Promise<{ info: EndpointInfo; model: SchemaModel; findings: Finding[] }>;
  /**
   * The selected tables as the neutral schema model; with `objects`, also the other schema
   * objects the engine carries (PostgreSQL: functions, views, triggers… as the source's DDL).
   */
  introspect(opts?: { objects?: boolean }): Promise<SchemaModel>;
  /** Sizes used to cut tables into chunks, and sorted key samples for the cut points. */
  extents(tables: TableModel[]): Promise<Map<TableModel, TableExtent>>;
  sampleKeys(table: TableModel, extent: TableExtent, chunks: number): Promise<string[][]>;

  /** Opens a consistent read point and keeps it until released (with `forCdc`, CDC starts at its position). */
  holdReadPoint(opts: { forCdc: boolean; tables: TableModel[]; migration: MigrationRef }): Promise<HeldReadPoint>;
  /** Joins a read point held elsewhere; throws ReadPointGone when its holder has gone. */
  joinReadPoint(token: string): Promise<SourceReader>;
  /** A reader of the source as it is now (validation after the cutover drain). */
  openReader(): Promise<SourceReader>;
  /** The sequences' current states, to carry to the target. */
  sequenceStates(sequences: SequenceModel[]): Promise<SequenceModel[]>;

  /** Change data capture from this source. */
  readonly cdc: ChangeSource;
  /** An error this source's driver raised, as a typed failure naming the source (secrets scrubbed). */
  failure(err: unknown, ctx: { table?: string; doing: string }): ApplicationFailure;
}

export interface PreparedCdc {
  /** Where the stream starts. */
  start: EnginePosition;
  /** A transaction committed at or before this is in the target already (just before `start`). */
  appliedThrough: EnginePosition;
  /** What CDC holds on the source now, in the engine's words (`replication slot x`). */
  resources: string[];
}

/** The CDC half of an engine: a change stream with an opaque, ordered position. */
export interface ChangeSource {
  /**
   * The stream carries the cutover marker `writeMarker` writes (PostgreSQL: a logical message).
   * When false, `writeMarker` returns the source's position once writes have stopped, and the
   * applier stops once it has applied everything up to it (cutover records it on the target).
   */
  readonly marksInStream: boolean;
  /**
   * Changes made by the source's foreign-key actions (ON DELETE CASCADE, SET NULL…) are in the
   * stream (PostgreSQL). When false (InnoDB's are not in the binlog), the applier lets the
   * target's foreign keys act for the changes that trigger them.
   */
  readonly sendsCascadedChanges: boolean;
  /**
   * Makes CDC possible (PostgreSQL: publication and slot) and returns where changes start:
   * after a load, the read point's position; otherwise `startPosition` or now.
   */
  prepare(opts: {
    model: SchemaModel;
    migration: MigrationRef;
    afterLoad: boolean;
    startPosition?: string;
    /** After a load: the positions its tables were read at (the ledger's), for engines without a slot. */
    loadPositions?: EnginePosition[];
    /** CDC ran before and resumes here (from the target's progress row). */
    resumeAt?: EnginePosition;
  }): Promise<PreparedCdc>;
  /**
   * `streaming`: send large transactions in pieces while they run, where the engine can
   * (PostgreSQL 14+); others ignore it.
   */
  open(from: EnginePosition, model: SchemaModel, opts?: { streaming?: boolean }): Promise<ChangeStream>;
  compare(a: EnginePosition, b: EnginePosition): number;
  /** Bytes from `from` to `to`, where the engine can tell. */
  distance(from: EnginePosition, to: EnginePosition): bigint;
  /** The source's clock now (cutover measures its quiet period on it). */
  now(): Promise<string>;
  /**
   * Waits until the stream has confirmed the source's current position; refuses after
   * `timeoutMs`. `applied` reads the target's progress row (engines that keep nothing on the
   * source compare with it).
   */
  waitConfirmed(timeoutMs: number, applied: () => Promise<EnginePosition | undefined>): Promise<void>;
  /**
   * Writes the cutover marker into the stream (the applier stops once it has applied it), or,
   * without `marksInStream`, returns the position the applier stops at.
   */
  writeMarker(content: string): Promise<EnginePosition>;
  /** Drops what CDC left on the source (slot, publication); keeps what existed before. */
  cleanup(migration: MigrationRef): Promise<CleanupResult>;
}

/** Builds an engine for a plan's source, resolving the secret reference inside the activity. */
export type SourceEngineFactory = (plan: Plan) => Promise<SourceEngine>;
