/**
 * The logical replication connection: slot creation (with an exported snapshot for the initial
 * copy), streaming pgoutput changes with back-pressure, and standby status updates that move the
 * slot forward only as far as the caller confirms.
 *
 * Wire protocol: https://www.postgresql.org/docs/15/protocol-replication.html
 */
import type { Duplex, DuplexOptions } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import { Client, type ClientConfig, type Connection } from 'pg';
import { FailureType } from '../../../plan/failure-types';
import { formatLsn, parseLsn } from '../lsn';
import { closeQuietly, connectionUrl, type PgEndpoint } from '../../pg/connection';
import { toFailure } from '../../pg/errors';
import { decodePgoutput } from './pgoutput';
import type { WalMessage } from './types';

// pg-copy-streams ships copy-both without type declarations.
interface CopyBothStream extends Duplex {
  submit(connection: Connection): void;
}
const { both } = require('pg-copy-streams') as {
  both(text: string, options: DuplexOptions & { alignOnCopyDataFrame?: boolean }): CopyBothStream;
};

const XLOG_DATA = 0x77; // 'w'
const KEEPALIVE = 0x6b; // 'k'
const STATUS_UPDATE = 0x72; // 'r'
const XLOG_DATA_HEADER = 25;
const KEEPALIVE_LENGTH = 18;

const PG_EPOCH_MS = 946_684_800_000;
const DEFAULT_STATUS_INTERVAL_MS = 10_000;
const DEFAULT_RECEIVE_TIMEOUT_MS = 60_000;
const START_TIMEOUT_MS = 60_000;
const CLOSE_WAIT_MS = 3_000;

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

export interface ReplicationStreamOptions {
  slot: string;
  publication: string;
  /** Where to start; the server starts at the slot's confirmed position when this is older (0n: just that). */
  startLsn: bigint;
  purpose?: string;
  /**
   * Protocol 2 with `streaming 'on'` (PostgreSQL 14+): a transaction larger than the server's
   * logical_decoding_work_mem is sent in pieces while it runs (stream blocks), not all at its
   * commit, so it is neither spilled to the source's disk nor applied only after it committed.
   */
  streaming?: boolean;
  /** How often to send a status update regardless of traffic. */
  statusIntervalMs?: number;
  /** Fail (Transient) when the caller has waited this long for a frame and the server answered no ping. */
  receiveTimeoutMs?: number;
}

/** Frames handed over at most at once: what a batch's consumer holds stays bounded. */
const MAX_BATCH = 1_024;

export interface ReplicationStream extends AsyncIterable<WalMessage[]> {
  /**
   * The frames already received, decoded, in batches: waits only when none is there (at most a
   * few socket reads ahead; a backlog arrives faster than it is applied, and a promise and a turn
   * of the event loop per frame showed in the worker's profile). Keepalives are in the batches,
   * in stream order: every message before one has been handed out. Ends quietly after close(); a
   * server error, a lost connection or an undecodable frame end it with a thrown
   * ApplicationFailure (lost connections: Transient), and the connection is then closed. One
   * iteration at a time; breaking out of a loop keeps the stream open, a later loop continues
   * where the last one stopped.
   */
  batches(): AsyncGenerator<WalMessage[], void, undefined>;
  /**
   * Records `flushLsn` as written, flushed and applied (never moving back) and sends a status
   * update now; the server may then recycle WAL before it. Before the first call updates report
   * 0/0, which the server ignores for the slot.
   */
  confirm(flushLsn: bigint): void;
  /** The last position confirmed (0n before any). */
  readonly confirmedLsn: bigint;
  /**
   * Highest walEnd seen in XLogData and keepalive frames. In logical replication an XLogData
   * frame's walEnd is its own message's position (0/0 for type and relation messages), not the
   * server's WAL end: only keepalives report how far the server has decoded.
   */
  readonly lastServerWalEnd: bigint;
  /** Ends the stream and the connection, within a few seconds even when the server is gone. */
  close(): Promise<void>;
}

export async function openReplicationStream(ep: PgEndpoint, opts: ReplicationStreamOptions): Promise<ReplicationStream> {
  checkIdentifier(opts.slot, 'replication slot');
  checkIdentifier(opts.publication, 'publication');
  const purpose = opts.purpose ?? `replication from slot ${opts.slot}`;
  const client = await connectReplication(ep, purpose);
  const stream = new PgReplicationStream(client, ep, opts);
  try {
    await stream.start();
  } catch (err) {
    await stream.close();
    throw err;
  }
  return stream;
}

/**
 * Creates a logical slot and exports the snapshot it starts from: a transaction that imports
 * `snapshot` (SET TRANSACTION SNAPSHOT) sees exactly the data before `consistentPoint`. The
 * snapshot lives until the next command on `client` or its close, so the caller keeps the client
 * idle while it is needed and then closes it (closeQuietly).
 */
export async function createSlotWithSnapshot(ep: PgEndpoint, slot: string): Promise<{ client: Client; consistentPoint: bigint; snapshot: string }> {
  checkIdentifier(slot, 'replication slot');
  const client = await connectReplication(ep, `snapshot of slot ${slot}`);
  try {
    const row = await createSlotOn(client, slot, 'export');
    if (!row.snapshot_name) throw new Error(`CREATE_REPLICATION_SLOT ${slot} exported no snapshot`);
    return { client, consistentPoint: parseLsn(row.consistent_point), snapshot: row.snapshot_name };
  } catch (err) {
    await closeQuietly(client);
    throw toFailure(err, ep.side, { endpoint: ep.description, secrets: ep.secrets, doing: `creating replication slot ${slot}` });
  }
}

/** Creates a logical slot without a snapshot; returns the position its changes start after. */
export async function createSlot(ep: PgEndpoint, slot: string): Promise<bigint> {
  checkIdentifier(slot, 'replication slot');
  const client = await connectReplication(ep, `creating slot ${slot}`);
  try {
    return parseLsn((await createSlotOn(client, slot, 'nothing')).consistent_point);
  } catch (err) {
    throw toFailure(err, ep.side, { endpoint: ep.description, secrets: ep.secrets, doing: `creating replication slot ${slot}` });
  } finally {
    await closeQuietly(client);
  }
}

/**
 * Drops a slot from a normal connection, first ending the walsender that holds it (a stream
 * whose worker died keeps the slot active until wal_sender_timeout). Nothing to do when the
 * slot does not exist. True when this call dropped it.
 */
export async function dropSlot(c: Client, slot: string, waitMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    await c.query('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL', [slot]);
    try {
      const r = await c.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      return r.rowCount === 1;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === '42704') return false; // dropped by someone else meanwhile
      // 55006: the terminated walsender has not released the slot yet.
      if (code !== '55006' || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

interface SlotRow {
  slot_name: string;
  consistent_point: string;
  snapshot_name: string | null;
  output_plugin: string;
}

async function createSlotOn(client: Client, slot: string, snapshot: 'export' | 'nothing'): Promise<SlotRow> {
  // PostgreSQL 15 option syntax; slot is a checked plain identifier.
  const r = await client.query<SlotRow>(`CREATE_REPLICATION_SLOT ${slot} LOGICAL pgoutput (SNAPSHOT '${snapshot}')`);
  const row = r.rows[0];
  if (!row) throw new Error(`CREATE_REPLICATION_SLOT ${slot} returned no row`);
  return row;
}

/** A `replication=database` connection: it takes replication commands and simple SQL, nothing else. */
async function connectReplication(ep: PgEndpoint, purpose: string): Promise<Client> {
  // @types/pg lacks `replication`, which pg passes on in the startup message.
  const config: ClientConfig & { replication: 'database' } = {
    connectionString: await connectionUrl(ep),
    ssl: ep.ssl,
    application_name: `dbferry ${purpose}`.slice(0, 63),
    connectionTimeoutMillis: 15_000,
    keepAlive: true,
    replication: 'database',
  };
  const client = new Client(config);
  // A connection that drops emits 'error' on the client too; without a listener Node would crash the worker.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await closeQuietly(client);
    throw toFailure(err, ep.side, { endpoint: ep.description, secrets: ep.secrets, doing: `connecting (${purpose})` });
  }
  return client;
}

function checkIdentifier(name: string, what: string): void {
  if (!IDENTIFIER.test(name)) {
    throw ApplicationFailure.create({
      type: FailureType.Unsupported,
      nonRetryable: true,
      message: `${what} name ${JSON.stringify(name)} is not a plain lower-case identifier (${IDENTIFIER.source})`,
    });
  }
}

/** A string literal for the replication command grammar, which knows '' but not E'' strings. */
function replicationLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

class PgReplicationStream implements ReplicationStream {
  confirmedLsn = 0n;
  lastServerWalEnd = 0n;

  private copy!: CopyBothStream;
  private timer: NodeJS.Timeout | undefined;
  private closing = false;
  private closed: Promise<void> | undefined;
  private ended = false;
  private failure: ApplicationFailure | undefined;
  private iterating = false;
  /** Between a stream start and its stop, messages carry their transaction id first (kept across loops). */
  private inStream = false;
  /** Set while the caller waits for a frame: the receive timeout runs only then. */
  private waitingSince: number | undefined;
  private lastFrameAt = Date.now();
  private wake: () => void = () => undefined;
  /** Rejects start() while it waits for the server's CopyBothResponse. */
  private startFailed: ((failure: ApplicationFailure) => void) | undefined;
  private readonly onReadable = () => this.wakeUp();

  constructor(
    private readonly client: Client,
    private readonly ep: PgEndpoint,
    private readonly opts: ReplicationStreamOptions,
  ) {}

  async start(): Promise<void> {
    const { slot, publication, startLsn } = this.opts;
    // publication_names is a list of identifiers inside a string literal: quote the identifier, then the literal.
    const publications = replicationLiteral(`"${publication.replace(/"/g, '""')}"`);
    const protocol = this.opts.streaming ? `proto_version '2', streaming 'on'` : `proto_version '1'`;
    const sql = `START_REPLICATION SLOT ${slot} LOGICAL ${formatLsn(startLsn)} (${protocol}, publication_names ${publications}, messages 'true')`;
    // Object mode: each CopyData frame is read as its own chunk. In byte mode, read() returns
    // everything buffered at once and frames would run together (alignOnCopyDataFrame only
    // aligns what is pushed).
    this.copy = both(sql, { alignOnCopyDataFrame: true, readableObjectMode: true });
    this.copy.on('readable', this.onReadable);
    this.copy.on('end', () => {
      this.ended = true;
      this.wakeUp();
    });
    this.copy.on('error', (err) => this.fail(err));
    this.client.query(this.copy);

    // The first status update doubles as the readiness probe: copy-both holds writes until the
    // server's CopyBothResponse, so its callback means streaming has started.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new Error(`timeout: no answer to START_REPLICATION within ${START_TIMEOUT_MS / 1000} s`));
      }, START_TIMEOUT_MS);
      this.startFailed = (failure) => {
        clearTimeout(timer);
        reject(failure);
      };
      this.copy.write(this.statusUpdate(false), (err) => {
        clearTimeout(timer);
        this.startFailed = undefined;
        if (err) reject(this.fail(err));
        else resolve();
      });
      // Nothing parses the server's answer until the readable side is asked for data.
      this.copy.read(0);
    });

    const interval = this.opts.statusIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS;
    this.timer = setInterval(() => this.tick(), interval);
    this.timer.unref();
  }

  [Symbol.asyncIterator](): AsyncGenerator<WalMessage[], void, undefined> {
    return this.batches();
  }

  async *batches(): AsyncGenerator<WalMessage[], void, undefined> {
    if (this.iterating) throw new Error('ReplicationStream: already being iterated');
    this.iterating = true;
    try {
      for (;;) {
        const first = this.bufferedFrame() ?? (await this.nextFrame());
        if (first === null) return;
        const batch: WalMessage[] = [];
        for (let frame: Buffer | undefined = first; frame; frame = batch.length < MAX_BATCH ? this.bufferedFrame() : undefined) batch.push(this.decode(frame));
        yield batch;
      }
    } finally {
      this.iterating = false;
    }
  }

  private decode(frame: Buffer): WalMessage {
    const kind = frame[0];
    if (kind === XLOG_DATA && frame.length > XLOG_DATA_HEADER) {
      const walStart = frame.readBigUInt64BE(1);
      const walEnd = frame.readBigUInt64BE(9);
      if (walEnd > this.lastServerWalEnd) this.lastServerWalEnd = walEnd;
      let message: WalMessage['message'];
      try {
        message = decodePgoutput(frame.subarray(XLOG_DATA_HEADER), this.inStream);
      } catch (err) {
        throw this.fail(err, `decoding the change at ${formatLsn(walStart)}`);
      }
      if (message.tag === 'stream-start') this.inStream = true;
      else if (message.tag === 'stream-stop') this.inStream = false;
      return { walStart, walEnd, message };
    }
    if (kind === KEEPALIVE && frame.length === KEEPALIVE_LENGTH) {
      const walEnd = frame.readBigUInt64BE(1);
      if (walEnd > this.lastServerWalEnd) this.lastServerWalEnd = walEnd;
      // Answered now (the server ends the connection after wal_sender_timeout without one), with
      // what the caller confirmed so far: its consumer reaches the keepalive later.
      if (frame[17] === 1) this.sendStatus(false);
      return { walStart: walEnd, walEnd, message: { tag: 'keepalive' } };
    }
    throw this.fail(new Error(`unexpected replication frame ${JSON.stringify(String.fromCharCode(kind))} of ${frame.length} bytes`));
  }

  confirm(flushLsn: bigint): void {
    if (flushLsn > this.confirmedLsn) this.confirmedLsn = flushLsn;
    this.sendStatus(false);
  }

  close(): Promise<void> {
    return (this.closed ??= this.shutdown());
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    clearInterval(this.timer);
    this.wakeUp();
    if (this.copy) {
      // client.end() sends Terminate after our last status update (the walsender reads them in
      // order), but only learns the server hung up by reading the socket to its end: let the
      // copy stream flow and drop whatever the server still sends.
      this.copy.removeListener('readable', this.onReadable);
      this.copy.on('data', () => undefined);
      this.copy.resume();
    }
    await closeQuietly(this.client, CLOSE_WAIT_MS);
    this.copy?.destroy();
  }

  /** A CopyData frame already received, if any (and the stream neither failed nor closing). */
  private bufferedFrame(): Buffer | undefined {
    if (this.failure || this.closing) return undefined;
    const frame = this.copy.read() as Buffer | null;
    if (frame === null) return undefined;
    this.lastFrameAt = Date.now();
    return frame;
  }

  /** The next CopyData frame, waiting for one; null once closed by us. */
  private async nextFrame(): Promise<Buffer | null> {
    for (;;) {
      // A failure closes the connection itself: report it rather than a quiet end.
      if (this.failure) throw this.failure;
      if (this.closing) return null;
      const frame = this.copy.read() as Buffer | null;
      if (frame !== null) {
        this.lastFrameAt = Date.now();
        return frame;
      }
      if (this.ended) {
        // The server left copy mode on its own (a shutting-down walsender does that).
        throw this.fail(new Error('the server closed the replication stream'));
      }
      this.waitingSince = Date.now();
      try {
        await new Promise<void>((resolve) => (this.wake = resolve));
      } finally {
        this.waitingSince = undefined;
      }
    }
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = () => undefined;
    wake();
  }

  /**
   * Records the first failure as the stream's end (typed, naming the endpoint), wakes a waiting
   * caller and closes the connection so the slot is released. Failures after close() are ours.
   */
  private fail(err: unknown, doing = `streaming from replication slot ${this.opts.slot}`): ApplicationFailure {
    if (!this.failure && !this.closing) {
      const code = (err as { code?: string }).code;
      const message = (err as Error).message ?? '';
      this.failure =
        // The walsender cannot decode a change (a value over 1 GB of text form, say): every
        // attempt would fail the same way, so the operator is asked at once, with the remedy.
        /invalid memory alloc request size|out of memory/i.test(message)
          ? ApplicationFailure.create({
              type: FailureType.SourceCannotSend,
              nonRetryable: true,
              message: `${this.ep.description}: the source cannot send a change through logical decoding (${message})`,
              details: [
                {
                  endpoint: this.ep.description,
                  code,
                  hint: 'such a value (over 1 GB in text form) cannot travel through logical replication: exclude or reload the table that holds it, then run dbferry retry',
                },
              ],
            })
          : code === '55006'
          ? // The slot is still held by an earlier walsender of ours that has not noticed we left.
            ApplicationFailure.create({
              type: FailureType.Transient,
              message: `${this.ep.description}: replication slot ${this.opts.slot} is in use by another connection (${(err as Error).message})`,
              details: [{ endpoint: this.ep.description, code }],
            })
          : toFailure(err, this.ep.side, { endpoint: this.ep.description, secrets: this.ep.secrets, doing });
      this.startFailed?.(this.failure);
      void this.close();
    }
    this.wakeUp();
    return this.failure ?? toFailure(err, this.ep.side, { endpoint: this.ep.description, secrets: this.ep.secrets, doing });
  }

  private tick(): void {
    const receiveTimeout = this.opts.receiveTimeoutMs ?? DEFAULT_RECEIVE_TIMEOUT_MS;
    const idleMs = this.waitingSince === undefined ? 0 : Date.now() - Math.max(this.waitingSince, this.lastFrameAt);
    if (idleMs > receiveTimeout) {
      // Status updates keep the server from pinging us, so silence while we wait means a dead link.
      this.fail(new Error(`timeout: nothing received from the server for ${Math.round(idleMs / 1000)} s (connection lost?)`));
      return;
    }
    // Half-way there, ask for a keepalive: a live server answers at once.
    this.sendStatus(idleMs > receiveTimeout / 2);
  }

  private sendStatus(replyRequested: boolean): void {
    if (this.closing || this.failure || !this.copy?.writable) return;
    this.copy.write(this.statusUpdate(replyRequested));
  }

  private statusUpdate(replyRequested: boolean): Buffer {
    const b = Buffer.allocUnsafe(34);
    b[0] = STATUS_UPDATE;
    b.writeBigUInt64BE(this.confirmedLsn, 1); // written
    b.writeBigUInt64BE(this.confirmedLsn, 9); // flushed
    b.writeBigUInt64BE(this.confirmedLsn, 17); // applied
    b.writeBigInt64BE(BigInt(Date.now() - PG_EPOCH_MS) * 1000n, 25);
    b[33] = replyRequested ? 1 : 0;
    return b;
  }
}
