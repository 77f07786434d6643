import { CopyRowHash } from '../../activities/pg/copy-hash';

/** A binary COPY stream as PostgreSQL writes it: header, tuples of length-prefixed fields (null: -1), trailer. */
function binaryCopy(rows: Array<Array<Buffer | null>>, extension = Buffer.alloc(0)): Buffer {
  const parts = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), int32(0), int32(extension.length), extension];
  for (const r of rows) {
    parts.push(int16(r.length));
    for (const f of r) parts.push(...(f === null ? [int32(-1)] : [int32(f.length), f]));
  }
  parts.push(int16(-1));
  return Buffer.concat(parts);
}

function int16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

function hashOf(stream: Buffer, format: 'binary' | 'text', chunk = stream.length): { rows: string; checksum: string } {
  const h = new CopyRowHash(format);
  for (let i = 0; i < stream.length; i += chunk) h.update(stream.subarray(i, i + chunk));
  return h.finish();
}

const ROWS: Array<Array<Buffer | null>> = Array.from({ length: 40 }, (_, i) => [int32(i), i % 5 === 0 ? null : Buffer.from(`value ${i} ${'x'.repeat(i * 7)}`), Buffer.alloc(0)]);

describe('copy-hash: row count and order-independent sum over a COPY stream', () => {
  it('gives one result whatever the chunk boundaries (rows, lengths and the header split anywhere)', () => {
    const stream = binaryCopy(ROWS, Buffer.from('ext'));
    const whole = hashOf(stream, 'binary');
    expect(whole.rows).toBe('40');
    for (const size of [1, 2, 3, 5, 7, 18, 19, 64, 333]) expect(hashOf(stream, 'binary', size)).toEqual(whole);
  });

  it('is the same for the same rows in another order, and different when one byte, a NULL or a row differs', () => {
    const base = hashOf(binaryCopy(ROWS), 'binary');
    expect(hashOf(binaryCopy([...ROWS].reverse()), 'binary')).toEqual(base);
    const changed = ROWS.map((r, i) => (i === 17 ? [r[0]!, Buffer.from('value 17 ' + 'x'.repeat(118) + 'y'), r[2]!] : r));
    expect(hashOf(binaryCopy(changed), 'binary').checksum).not.toBe(base.checksum);
    const nulled = ROWS.map((r, i) => (i === 3 ? [r[0]!, null, r[2]!] : r));
    expect(hashOf(binaryCopy(nulled), 'binary').checksum).not.toBe(base.checksum);
    // An empty string is not a NULL.
    const emptied = ROWS.map((r, i) => (i === 5 ? [r[0]!, Buffer.alloc(0), r[2]!] : r));
    expect(hashOf(binaryCopy(emptied), 'binary').checksum).not.toBe(base.checksum);
    const doubled = hashOf(binaryCopy([...ROWS, ROWS[9]!]), 'binary');
    expect(doubled.rows).toBe('41');
    // A row twice and another missing: the count alone would not see it.
    const swapped = hashOf(binaryCopy([...ROWS.slice(1), ROWS[9]!]), 'binary');
    expect(swapped.rows).toBe('40');
    expect(swapped.checksum).not.toBe(base.checksum);
  });

  it('refuses a stream that ends inside a row or without its trailer', () => {
    const stream = binaryCopy(ROWS);
    expect(() => hashOf(stream.subarray(0, stream.length - 2), 'binary')).toThrow(/ended inside a row/);
    expect(() => hashOf(stream.subarray(0, stream.length - 9), 'binary')).toThrow(/ended inside a row/);
    expect(() => hashOf(Buffer.from('1\tone\n2\ttw'), 'text')).toThrow(/ended inside a row/);
    expect(() => hashOf(Buffer.from('NOTCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0\xff\xff', 'latin1'), 'binary')).toThrow(/PGCOPY/);
  });

  it('hashes text rows line by line, whatever the chunks', () => {
    const text = Buffer.from(ROWS.map((r, i) => `${i}\t${r[1] === null ? '\\N' : r[1].toString()}\t\n`).join(''));
    const whole = hashOf(text, 'text');
    expect(whole.rows).toBe('40');
    for (const size of [1, 4, 13, 100]) expect(hashOf(text, 'text', size)).toEqual(whole);
    const reordered = Buffer.from(text.toString().split('\n').filter(Boolean).reverse().join('\n') + '\n');
    expect(hashOf(reordered, 'text')).toEqual(whole);
    expect(hashOf(Buffer.from(text.toString().replace('value 12', 'value 13')), 'text').checksum).not.toBe(whole.checksum);
  });

  it('sums exactly past the point where the partial sums are folded (2^20 rows)', () => {
    const h = new CopyRowHash('text');
    const row = Buffer.from('same row\n');
    const n = (1 << 20) + 3;
    const many = Buffer.alloc(row.length * 1000);
    for (let i = 0; i < 1000; i++) row.copy(many, i * row.length);
    let left = n;
    for (; left >= 1000; left -= 1000) h.update(many);
    h.update(many.subarray(0, left * row.length));
    const one = hashOf(row, 'text');
    expect(h.finish()).toEqual({ rows: String(n), checksum: (BigInt(one.checksum) * BigInt(n)).toString() });
  });
});
