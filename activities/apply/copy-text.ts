/**
 * COPY text format encoding of tuples whose values are already the server's text forms: only
 * backslash, tab, newline and carriage return need escaping, and NULL is `\N`. Rows go straight
 * into large chunks (no string building, no per-row Buffer): this runs for every row of every
 * change, on the same CPUs as the target server.
 */
import type { Tuple } from './tuple';

const BACKSLASH = 0x5c;
const TAB = 0x09;
const NEWLINE = 0x0a;
const CR = 0x0d;

export class CopyTextEncoder {
  private readonly chunks: Buffer[] = [];
  private buf: Buffer;
  private pos = 0;
  /** Rows written so far. */
  rows = 0;
  /** Bytes written so far. */
  bytes = 0;

  /** Starts small (most batches are small) and doubles the chunk size up to `maxChunk`. */
  constructor(
    private chunkSize = 16 << 10,
    private readonly maxChunk = 4 << 20,
  ) {
    this.buf = Buffer.allocUnsafe(chunkSize);
  }

  /**
   * Appends one row made of the values at `positions` of `tuple`. The values must be Buffers or
   * null (the caller resolves unchanged TOAST before).
   */
  writeRow(tuple: Tuple, positions: readonly number[]): void {
    // Worst case: every byte escaped, plus a separator (or the newline) per value.
    let need = 0;
    for (let i = 0; i < positions.length; i++) {
      const v = tuple[positions[i]!];
      need += v instanceof Buffer ? 2 * v.length + 1 : 3;
    }
    if (this.pos + need > this.buf.length) this.nextChunk(need);
    const out = this.buf;
    let p = this.pos;
    for (let i = 0; i < positions.length; i++) {
      if (i > 0) out[p++] = TAB;
      const v = tuple[positions[i]!];
      if (v instanceof Buffer) {
        // Scanning first and copying clean values whole is twice as fast as escaping byte by
        // byte: most values have nothing to escape.
        const n = v.length;
        let j = 0;
        while (j < n) {
          const b = v[j]!;
          if (b <= CR || b === BACKSLASH) break;
          j++;
        }
        if (j < n) {
          p = escapeInto(v, out, p);
        } else if (n < 16) {
          for (let k = 0; k < n; k++) out[p + k] = v[k]!;
          p += n;
        } else {
          p += v.copy(out, p);
        }
      } else if (v === null) {
        out[p++] = BACKSLASH;
        out[p++] = 0x4e; // N
      } else {
        throw new Error('an unchanged TOAST value cannot be copied: it has no value to send');
      }
    }
    out[p++] = NEWLINE;
    this.bytes += p - this.pos;
    this.pos = p;
    this.rows++;
  }

  /** The encoded rows; the encoder must not be used afterwards. */
  finish(): Buffer[] {
    if (this.pos > 0) this.chunks.push(this.buf.subarray(0, this.pos));
    this.pos = 0;
    this.buf = Buffer.alloc(0);
    return this.chunks;
  }

  private nextChunk(need: number): void {
    if (this.pos > 0) this.chunks.push(this.buf.subarray(0, this.pos));
    this.chunkSize = Math.min(this.chunkSize * 2, this.maxChunk);
    this.buf = Buffer.allocUnsafe(Math.max(this.chunkSize, need));
    this.pos = 0;
  }
}

function escapeInto(v: Buffer, out: Buffer, p: number): number {
  for (let j = 0; j < v.length; j++) {
    const b = v[j]!;
    if (b > CR && b !== BACKSLASH) {
      out[p++] = b;
    } else if (b === BACKSLASH) {
      out[p++] = BACKSLASH;
      out[p++] = BACKSLASH;
    } else if (b === TAB) {
      out[p++] = BACKSLASH;
      out[p++] = 0x74; // t
    } else if (b === NEWLINE) {
      out[p++] = BACKSLASH;
      out[p++] = 0x6e; // n
    } else if (b === CR) {
      out[p++] = BACKSLASH;
      out[p++] = 0x72; // r
    } else {
      out[p++] = b;
    }
  }
  return p;
}

/** Encodes rows in one go (all positions): for tests and small inputs. */
export function encodeCopyText(rows: Tuple[], positions?: readonly number[]): Buffer {
  const enc = new CopyTextEncoder(64);
  for (const r of rows) enc.writeRow(r, positions ?? r.map((_, i) => i));
  return Buffer.concat(enc.finish());
}
