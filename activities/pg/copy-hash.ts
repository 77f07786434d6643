import type { RowFormat } from '../engine';
import { sourceColumns, type TableModel } from '../../plan/schema-model';

/**
 * The form a table's rows travel in, and are hashed in (`copy-hash`): binary where every column
 * has the same binary form on both servers, else text. Binary arrays and composites of user
 * types embed OIDs that differ on the target, and a column a mapping retyped has another binary
 * form there (text converts).
 */
export function copyFormat(t: TableModel): RowFormat {
  return sourceColumns(t).every((c) => c.binaryCopySafe && c.retypedFrom === undefined) ? 'binary' : 'text';
}

const BINARY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
/** Signature, flags, header extension length. */
const BINARY_HEADER = BINARY_SIGNATURE.length + 8;
/** Partial sums are folded into the exact total before they could lose a bit (2^53 / 2^32). */
const FOLD_EVERY = 1 << 20;

/**
 * The `copy-hash` checksum: the row count and the sum of a 64-bit hash of each row's bytes in a
 * `COPY … TO STDOUT` stream, in either format. Equal rows give equal sums whatever their order,
 * so the source side is summed on the stream the load copies (no second scan of the source)
 * and the target side on a COPY of the same columns in the same format: PostgreSQL writes the
 * same bytes for the same values on both (binary forms are the values' own; text forms follow
 * the session settings every dbferry connection sets alike).
 *
 * Hand-written: the rows are hashed where they lie in the chunks the socket hands over, with no
 * allocation per row; the hash libraries on npm take one buffer per call and return a BigInt or
 * a string per row, which costs more than the hashing itself at 10 million rows. The hash is
 * MurmurHash3's 32-bit block and finalizer run in two lanes with different state updates (a
 * checksum against accidents, not against an adversary).
 */
export class CopyRowHash {
  private readonly binary: boolean;
  private headerDone: boolean;
  private ended = false;
  /** Bytes of a row not yet complete, and how many bytes the parse needs before trying again. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private need = 0;
  private rowsCounted = 0;
  private lo = 0;
  private hi = 0;
  private folded = 0;
  private total = 0n;

  constructor(format: RowFormat) {
    this.binary = format === 'binary';
    this.headerDone = !this.binary;
  }

  update(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.pendingBytes > 0 || !this.headerDone) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes < this.need || (!this.binary && chunk.indexOf(10) < 0)) return;
      chunk = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    const used = this.binary ? this.binaryRows(chunk) : this.textRows(chunk);
    if (used < chunk.length) {
      this.pending.push(chunk.subarray(used));
      this.pendingBytes = chunk.length - used;
    }
  }

  /** The count and the checksum; throws when the stream ended inside a row. */
  finish(): { rows: string; checksum: string } {
    // A binary stream always ends with its trailer; a text one with its last row's newline.
    if (this.pendingBytes > 0 || (this.binary && !this.ended)) throw new Error('the COPY stream ended inside a row');
    this.fold();
    return { rows: String(this.folded), checksum: this.total.toString() };
  }

  get rows(): number {
    return this.folded + this.rowsCounted;
  }

  /** Hashes each complete tuple of `b`; returns where the first incomplete one starts. */
  private binaryRows(b: Buffer): number {
    let p = 0;
    if (!this.headerDone) {
      if (b.length < BINARY_HEADER) return this.wait(BINARY_HEADER);
      const extension = b.readInt32BE(BINARY_SIGNATURE.length + 4);
      if (b.length < BINARY_HEADER + extension) return this.wait(BINARY_HEADER + extension);
      if (!b.subarray(0, BINARY_SIGNATURE.length).equals(BINARY_SIGNATURE)) throw new Error('not a binary COPY stream (no PGCOPY signature)');
      p = BINARY_HEADER + extension;
      this.headerDone = true;
    }
    const end = b.length;
    while (p + 2 <= end && !this.ended) {
      const fields = b.readInt16BE(p);
      if (fields === -1) {
        this.ended = true;
        return end;
      }
      let q = p + 2;
      for (let f = 0; f < fields; f++) {
        if (q + 4 > end) return this.wait(q + 4 - p, p);
        const len = b.readInt32BE(q);
        q += 4 + (len > 0 ? len : 0);
        if (q > end) return this.wait(q - p, p);
      }
      this.add(b, p, q);
      p = q;
    }
    if (p < end && !this.ended) this.need = 2;
    return p;
  }

  private textRows(b: Buffer): number {
    let p = 0;
    for (;;) {
      const nl = b.indexOf(10, p);
      if (nl < 0) return p;
      this.add(b, p, nl);
      p = nl + 1;
    }
  }

  /** A row is incomplete: it needs `bytes` from its start before the parse can go on. */
  private wait(bytes: number, from = 0): number {
    this.need = bytes;
    return from;
  }

  private add(b: Buffer, s: number, e: number): void {
    let h1 = 0x9747b28c ^ (e - s);
    let h2 = 0x1b873593 ^ (e - s);
    let i = s;
    for (; i + 4 <= e; i += 4) {
      let k = b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
      k = Math.imul(k, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      k = Math.imul(k, 0x1b873593);
      h1 ^= k;
      h1 = (h1 << 13) | (h1 >>> 19);
      h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
      h2 ^= k;
      h2 = (h2 << 17) | (h2 >>> 15);
      h2 = (Math.imul(h2, 5) + 0x561ccd1b) | 0;
    }
    if (i < e) {
      let k = 0;
      for (let j = e - 1; j >= i; j--) k = (k << 8) | b[j]!;
      k = Math.imul(k, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      k = Math.imul(k, 0x1b873593);
      h1 ^= k;
      h2 ^= k;
    }
    h1 ^= h2;
    h2 ^= h1;
    h1 = fmix(h1);
    h2 = fmix(h2);
    this.lo += h1 >>> 0;
    this.hi += h2 >>> 0;
    if (++this.rowsCounted === FOLD_EVERY) this.fold();
  }

  private fold(): void {
    this.total += (BigInt(this.hi) << 32n) + BigInt(this.lo);
    this.folded += this.rowsCounted;
    this.rowsCounted = 0;
    this.lo = 0;
    this.hi = 0;
  }
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
