/**
 * Decoder for one pgoutput message (logical replication protocol versions 1 and 2), the payload
 * of an XLogData frame after its 25-byte header. Pure: no I/O; the one state between messages,
 * whether a stream block is open (protocol 2 then prefixes each message with its transaction
 * id), is the caller's.
 *
 * Hot path: a large transaction is millions of these. Column values are views into the frame
 * (`subarray`, no copy, no string), and only names in relation/type messages become strings.
 */
import { UNCHANGED, type ColumnValue, type PgoutputMessage, type RelationColumn, type Tuple } from './types';

/** PostgreSQL timestamps count from 2000-01-01; ours from 1970-01-01 (both in µs). */
const PG_EPOCH_OFFSET_US = 946_684_800_000_000n;

const TAG_BEGIN = 0x42; // B
const TAG_COMMIT = 0x43; // C
const TAG_ORIGIN = 0x4f; // O
const TAG_RELATION = 0x52; // R
const TAG_TYPE = 0x59; // Y
const TAG_INSERT = 0x49; // I
const TAG_UPDATE = 0x55; // U
const TAG_DELETE = 0x44; // D
const TAG_TRUNCATE = 0x54; // T
const TAG_MESSAGE = 0x4d; // M
const TAG_STREAM_START = 0x53; // S
const TAG_STREAM_STOP = 0x45; // E
const TAG_STREAM_COMMIT = 0x63; // c
const TAG_STREAM_ABORT = 0x41; // A

const TUPLE_NEW = 0x4e; // N
const TUPLE_KEY = 0x4b; // K
const TUPLE_OLD = 0x4f; // O

const VALUE_NULL = 0x6e; // n
const VALUE_UNCHANGED = 0x75; // u
const VALUE_TEXT = 0x74; // t
const VALUE_BINARY = 0x62; // b

const TRUNCATE_CASCADE = 1;
const TRUNCATE_RESTART_IDENTITY = 2;
const MESSAGE_TRANSACTIONAL = 1;

export class PgoutputError extends Error {
  override name = 'PgoutputError';
}

function byteName(b: number): string {
  return b >= 0x20 && b < 0x7f ? `'${String.fromCharCode(b)}' (0x${b.toString(16)})` : `0x${b.toString(16).padStart(2, '0')}`;
}

/** A cursor over one message. Bounds come from Buffer's own checked reads, plus explicit checks where subarray would clamp. */
class Reader {
  pos = 1; // after the tag
  constructor(readonly buf: Buffer) {}

  u8(): number {
    if (this.pos >= this.buf.length) throw this.truncated();
    return this.buf[this.pos++];
  }
  i16(): number {
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  i32(): number {
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u32(): number {
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  lsn(): bigint {
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  time(): bigint {
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v + PG_EPOCH_OFFSET_US;
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw this.truncated();
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
  bytes(n: number): Buffer {
    if (n < 0 || this.pos + n > this.buf.length) throw this.truncated();
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  tuple(): Tuple {
    const n = this.i16();
    const buf = this.buf;
    const out: ColumnValue[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const kind = buf[this.pos++];
      if (kind === VALUE_TEXT || kind === VALUE_BINARY) {
        out[i] = this.bytes(this.i32());
      } else if (kind === VALUE_NULL) {
        out[i] = null;
      } else if (kind === VALUE_UNCHANGED) {
        out[i] = UNCHANGED;
      } else if (kind === undefined) {
        throw this.truncated();
      } else {
        throw new PgoutputError(`pgoutput: unknown tuple value kind ${byteName(kind)} in column ${i + 1} of ${n}`);
      }
    }
    return out;
  }

  /** 'K' or 'O' then a tuple: the old row of an update or delete. */
  oldTuple(kind: number): { kind: 'K' | 'O'; tuple: Tuple } {
    return { kind: kind === TUPLE_KEY ? 'K' : 'O', tuple: this.tuple() };
  }

  expect(byte: number, what: string): void {
    const b = this.u8();
    if (b !== byte) throw new PgoutputError(`pgoutput: expected ${byteName(byte)} (${what}) at byte ${this.pos - 1}, got ${byteName(b)}`);
  }

  truncated(): PgoutputError {
    return new PgoutputError(`pgoutput: message ${byteName(this.buf[0])} of ${this.buf.length} bytes is truncated at byte ${this.pos}`);
  }
}

/** `inStream`: between a stream start and its stop, where protocol 2 sends the (sub)transaction id first. */
export function decodePgoutput(buf: Buffer, inStream = false): PgoutputMessage {
  if (buf.length === 0) throw new PgoutputError('pgoutput: empty message');
  const r = new Reader(buf);
  let msg: PgoutputMessage;
  try {
    msg = decode(r, buf[0], inStream);
  } catch (err) {
    // Buffer's own bound checks say "offset out of range": say which message it was instead.
    // (By code, not instanceof: a RangeError from another realm, e.g. under jest, fails instanceof.)
    const code = (err as { code?: unknown }).code;
    if (code === 'ERR_OUT_OF_RANGE' || code === 'ERR_BUFFER_OUT_OF_BOUNDS') throw r.truncated();
    throw err;
  }
  // Extra bytes mean we misread the layout (another protocol version?): fail rather than guess.
  if (r.pos !== buf.length) {
    throw new PgoutputError(`pgoutput: message ${byteName(buf[0])} has ${buf.length - r.pos} unexpected trailing bytes (decoded ${r.pos} of ${buf.length})`);
  }
  return msg;
}

function decode(r: Reader, tag: number, inStream: boolean): PgoutputMessage {
  switch (tag) {
    case TAG_STREAM_START:
      return { tag: 'stream-start', xid: r.u32(), first: r.u8() === 1 };
    case TAG_STREAM_STOP:
      return { tag: 'stream-stop' };
    case TAG_STREAM_COMMIT:
      return { tag: 'stream-commit', xid: r.u32(), flags: r.u8(), commitLsn: r.lsn(), endLsn: r.lsn(), commitTime: r.time() };
    case TAG_STREAM_ABORT:
      return { tag: 'stream-abort', xid: r.u32(), subxid: r.u32() };
    case TAG_BEGIN:
    case TAG_COMMIT:
    case TAG_ORIGIN:
      if (inStream) throw new PgoutputError(`pgoutput: message ${byteName(tag)} inside a stream block`);
      return decodeOne(r, tag);
    default: {
      if (!inStream) return decodeOne(r, tag);
      const xid = r.u32();
      return { ...decodeOne(r, tag), xid } as PgoutputMessage;
    }
  }
}

function decodeOne(r: Reader, tag: number): PgoutputMessage {
  switch (tag) {
    case TAG_BEGIN:
      return { tag: 'begin', finalLsn: r.lsn(), commitTime: r.time(), xid: r.u32() };
    case TAG_COMMIT:
      return { tag: 'commit', flags: r.u8(), commitLsn: r.lsn(), endLsn: r.lsn(), commitTime: r.time() };
    case TAG_ORIGIN:
      return { tag: 'origin', lsn: r.lsn(), name: r.cstring() };
    case TAG_RELATION: {
      const relationId = r.u32();
      const schema = r.cstring();
      const name = r.cstring();
      const replicaIdentity = String.fromCharCode(r.u8());
      const n = r.i16();
      const columns: RelationColumn[] = [];
      for (let i = 0; i < n; i++) {
        const flags = r.u8();
        columns.push({ key: (flags & 1) !== 0, name: r.cstring(), typeOid: r.u32(), typmod: r.i32() });
      }
      return { tag: 'relation', relationId, schema, name, replicaIdentity, columns };
    }
    case TAG_TYPE:
      return { tag: 'type', typeOid: r.u32(), schema: r.cstring(), name: r.cstring() };
    case TAG_INSERT: {
      const relationId = r.u32();
      r.expect(TUPLE_NEW, 'new tuple');
      return { tag: 'insert', relationId, new: r.tuple() };
    }
    case TAG_UPDATE: {
      const relationId = r.u32();
      const kind = r.u8();
      if (kind === TUPLE_KEY || kind === TUPLE_OLD) {
        const old = r.oldTuple(kind);
        r.expect(TUPLE_NEW, 'new tuple after the old one');
        return { tag: 'update', relationId, old, new: r.tuple() };
      }
      if (kind !== TUPLE_NEW) throw new PgoutputError(`pgoutput: update of relation ${relationId}: unknown tuple kind ${byteName(kind)}`);
      return { tag: 'update', relationId, new: r.tuple() };
    }
    case TAG_DELETE: {
      const relationId = r.u32();
      const kind = r.u8();
      if (kind !== TUPLE_KEY && kind !== TUPLE_OLD) {
        throw new PgoutputError(`pgoutput: delete from relation ${relationId}: expected old tuple 'K' or 'O', got ${byteName(kind)}`);
      }
      return { tag: 'delete', relationId, old: r.oldTuple(kind) };
    }
    case TAG_TRUNCATE: {
      const n = r.i32();
      const options = r.u8();
      const relationIds: number[] = [];
      for (let i = 0; i < n; i++) relationIds.push(r.u32());
      return {
        tag: 'truncate',
        relationIds,
        cascade: (options & TRUNCATE_CASCADE) !== 0,
        restartIdentity: (options & TRUNCATE_RESTART_IDENTITY) !== 0,
      };
    }
    case TAG_MESSAGE: {
      const flags = r.u8();
      const lsn = r.lsn();
      const prefix = r.cstring();
      const content = r.bytes(r.i32());
      return { tag: 'message', transactional: (flags & MESSAGE_TRANSACTIONAL) !== 0, lsn, prefix, content };
    }
    default:
      throw new PgoutputError(`pgoutput: unknown message tag ${byteName(tag)}`);
  }
}
