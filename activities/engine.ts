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
import type { CleanupResult, EndpointInfo, Finding, MigrationRef } from '../plan/migration-types';
import type { Plan } from '../plan/plan-schema';
import type { SchemaModel, TableModel } from '../plan/schema-model';
import type { ChunkRange, TableExtent } from '../plan/load-chunks';
import type { RowChange as SourceChange } from './apply/change';

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
}

/** A read point kept alive by one activity; it ends with `release()` or with the connection. */
export interface HeldReadPoint extends ReadPoint {
  /** Rejects when the read point is lost (its connection died): loaders must move to a new one. */
  watch(signal?: AbortSignal): Promise<void>;
  release(): Promise<void>;
}

/** How rows travel from source to target: PostgreSQL COPY text or binary. */
export type RowFormat = 'text' | 'binary';

/** How a row count and checksum were computed; the target computes the same over its rows. */
export type ChecksumMethod = 'record-hash' | 'text-hash';

export interface TableChecksum {
  rows: string;
  /** Order-independent; undefined when only counted. */
  checksum?: string;
  method: ChecksumMethod;
}

/** A reader inside one read point (or, with `readPoint` undefined, reading the source as it is now). */
export interface SourceReader {
  /** Rows of a table or a chunk of it, in the form the PostgreSQL target ingests, with back-pressure. */
  copyOut(table: TableModel, range: ChunkRange, format: RowFormat): Readable;
  /** Row count and checksum over normalized values, in the same read point as copyOut. */
  checksum(table: TableModel, range: ChunkRange, withChecksum: boolean): Promise<TableChecksum>;
  close(): Promise<void>;
}

/** Thrown by `joinReadPoint` when the read point's holder has gone: wait for the next generation. */
export class ReadPointGone extends Error {}

/** What a change stream produces, in source commit order. */
export type ChangeEvent =
  | { kind: 'begin'; commitPosition: EnginePosition; commitTimeMicros: bigint }
  /** A table's current shape; the applier compares it with the target (DDL policy). */
  | { kind: 'relation'; relation: SourceRelation }
  | { kind: 'change'; change: SourceChange; position: EnginePosition }
  | { kind: 'marker'; content: string; position: EnginePosition }
  | { kind: 'commit'; commitPosition: EnginePosition; endPosition: EnginePosition; commitTimeMicros: bigint };

/** A source table's columns as the change stream describes them (with the source's type names). */
export interface SourceRelation {
  id: number;
  /** qualifiedKey of the table. */
  table: string;
  schema: string;
  name: string;
  columns: Array<{ name: string; type: string; key: boolean }>;
  /** Changes carry the whole old row (no primary key needed). */
  fullIdentity: boolean;
}

export interface ChangeStream extends AsyncIterable<ChangeEvent> {
  /** Everything up to here is durable on the target: the source may forget it. */
  confirm(position: EnginePosition): void;
  /** Called when the source says nothing is pending up to `position` (idle keepalive). */
  onIdle(listener: (position: EnginePosition) => void): void;
  /** The source's newest position this stream has heard of. */
  sourcePosition(): EnginePosition | undefined;
  close(): Promise<void>;
}

/** Source-side state of CDC, read on a timer for lag and alarms. */
export interface SourceCdcState {
  position: EnginePosition;
  /** Bytes the source keeps for this migration (PostgreSQL: WAL retained by the slot). */
  retainedBytes: number;
  /** Words for an alert about the retained bytes (`replication slot x holds …`). */
  retainedBy: string;
}

export interface SourceEngine {
  readonly name: SourceEngineName;
  /** `source <engine>/<host:port>/<database>`: no credentials, safe for history and messages. */
  readonly description: string;

  /** Version, the selected tables and what stands in the way, checked before anything is written. */
  preflight(opts: { cdc: boolean }): Promise<{ info: EndpointInfo; model: SchemaModel; findings: Finding[] }>;
  /** The selected tables as the neutral schema model. */
  introspect(): Promise<SchemaModel>;
  /** Sizes used to cut tables into chunks, and sorted key samples for the cut points. */
  extents(tables: TableModel[]): Promise<Map<TableModel, TableExtent>>;
  sampleKeys(table: TableModel, extent: TableExtent, chunks: number): Promise<string[][]>;

  /** Opens a consistent read point and keeps it until released (with `forCdc`, CDC starts at its position). */
  holdReadPoint(opts: { forCdc: boolean; tables: TableModel[] }): Promise<HeldReadPoint>;
  /** Joins a read point held elsewhere; throws ReadPointGone when its holder has gone. */
  joinReadPoint(readPoint: Pick<ReadPoint, 'token'>): Promise<SourceReader>;
  /** A reader of the source as it is now (validation after the cutover drain, dump checks). */
  openReader(): Promise<SourceReader>;
  /** Sequence states (name → last value, is_called) to carry to the target. */
  sequenceStates(model: SchemaModel): Promise<Map<string, { lastValue: string; isCalled: boolean }>>;

  /** Makes CDC possible from `readPoint` or from now: returns where changes start. */
  prepareCdc(opts: { model: SchemaModel; startPosition?: string; afterLoad: boolean }): Promise<{ start: EnginePosition; resources: string[] }>;
  openChangeStream(from: EnginePosition, opts: { signal?: AbortSignal }): Promise<ChangeStream>;
  cdcState(): Promise<SourceCdcState>;
  comparePositions(a: EnginePosition, b: EnginePosition): number;
  /** Bytes between two positions, where the engine can tell (lag). */
  distance(from: EnginePosition, to: EnginePosition): bigint | undefined;
  /** Waits until the change stream has confirmed everything up to now; false after `timeoutMs`. */
  waitConfirmed(timeoutMs: number): Promise<{ ok: boolean; behind?: string }>;
  /** Writes the cutover marker into the change stream; the applier stops once it has applied it. */
  writeCutoverMarker(migration: MigrationRef): Promise<EnginePosition>;
  /** The source's clock now (cutover measures its quiet period on it). */
  now(): Promise<string>;
  /** Drops what CDC left on the source (slot, publication); keeps what existed before. */
  cleanup(migration: MigrationRef): Promise<CleanupResult>;
  close(): Promise<void>;
}

/** Builds an engine for a plan's source, resolving the secret reference inside the activity. */
export type SourceEngineFactory = (plan: Plan) => Promise<SourceEngine>;
