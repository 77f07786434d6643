import { decodePgoutput } from '../../activities/postgres/cdc/pgoutput';
import { UNCHANGED, type Tuple } from '../../activities/postgres/cdc/types';

/** Builds messages byte by byte the way pgoutput (protocol 1) lays them out. */
class Msg {
  private parts: Buffer[] = [];
  constructor(tag: string) {
    this.char(tag);
  }
  char(c: string): this {
    return this.u8(c.charCodeAt(0));
  }
  u8(v: number): this {
    this.parts.push(Buffer.from([v]));
    return this;
  }
  i16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    this.parts.push(b);
    return this;
  }
  i32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.parts.push(b);
    return this;
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    this.parts.push(b);
    return this;
  }
  i64(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(v);
    this.parts.push(b);
    return this;
  }
  u64(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v);
    this.parts.push(b);
    return this;
  }
  str(s: string): this {
    this.parts.push(Buffer.from(s, 'utf8'), Buffer.from([0]));
    return this;
  }
  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  /** TupleData: each value is text, null, UNCHANGED, or ['b', bytes] for binary. */
  tuple(values: Array<string | null | typeof UNCHANGED | ['b', Buffer]>): this {
    this.i16(values.length);
    for (const v of values) {
      if (v === null) this.char('n');
      else if (v === UNCHANGED) this.char('u');
      else if (Array.isArray(v)) this.char('b').i32(v[1].length).raw(v[1]);
      else {
        const bytes = Buffer.from(v, 'utf8');
        this.char('t').i32(bytes.length).raw(bytes);
      }
    }
    return this;
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** Tuple values as strings for easy comparison; UNCHANGED and null stay. */
function texts(t: Tuple): Array<string | null | typeof UNCHANGED> {
  return t.map((v) => (v === null || v === UNCHANGED ? v : v.toString('utf8')));
}

// 2024-01-02 03:04:05.678901 UTC
const EPOCH_US = 1704164645678901n;
const PG_US = EPOCH_US - 946684800000000n;

describe('decodePgoutput', () => {
  it('begin: final LSN, commit time as epoch µs, xid (unsigned)', () => {
    const buf = new Msg('B').u64(0x16b374d848n).i64(PG_US).u32(0xfffffff0).build();
    expect(decodePgoutput(buf)).toEqual({ tag: 'begin', finalLsn: 0x16b374d848n, commitTime: EPOCH_US, xid: 0xfffffff0 });
  });

  it('commit: flags, commit LSN, end LSN, time', () => {
    const buf = new Msg('C').u8(0).u64(0x100n).u64(0x130n).i64(PG_US).build();
    expect(decodePgoutput(buf)).toEqual({ tag: 'commit', flags: 0, commitLsn: 0x100n, endLsn: 0x130n, commitTime: EPOCH_US });
  });

  it('reads LSNs above 2^63 as unsigned and times before 2000 as negative offsets', () => {
    const buf = new Msg('C').u8(0).u64(0xfffffffffffffff0n).u64(0xffffffffffffffffn).i64(-1n).build();
    expect(decodePgoutput(buf)).toMatchObject({ commitLsn: 0xfffffffffffffff0n, endLsn: 0xffffffffffffffffn, commitTime: 946684799999999n });
  });

  it('origin', () => {
    const buf = new Msg('O').u64(0x42n).str('pg_16385').build();
    expect(decodePgoutput(buf)).toEqual({ tag: 'origin', lsn: 0x42n, name: 'pg_16385' });
  });

  it('relation: names, replica identity, columns with key flag, type and typmod', () => {
    const buf = new Msg('R')
      .u32(16390)
      .str('public')
      .str('Ünïcode table')
      .char('d')
      .i16(3)
      .u8(1).str('id').u32(23).i32(-1)
      .u8(0).str('name').u32(1043).i32(54)
      .u8(0).str('mood').u32(16400).i32(-1)
      .build();
    expect(decodePgoutput(buf)).toEqual({
      tag: 'relation',
      relationId: 16390,
      schema: 'public',
      name: 'Ünïcode table',
      replicaIdentity: 'd',
      columns: [
        { key: true, name: 'id', typeOid: 23, typmod: -1 },
        { key: false, name: 'name', typeOid: 1043, typmod: 54 },
        { key: false, name: 'mood', typeOid: 16400, typmod: -1 },
      ],
    });
  });

  it('relation in pg_catalog has an empty schema; relations may have no columns', () => {
    const buf = new Msg('R').u32(1).str('').str('t').char('n').i16(0).build();
    expect(decodePgoutput(buf)).toEqual({ tag: 'relation', relationId: 1, schema: '', name: 't', replicaIdentity: 'n', columns: [] });
  });

  it('type', () => {
    const buf = new Msg('Y').u32(16400).str('public').str('mood').build();
    expect(decodePgoutput(buf)).toEqual({ tag: 'type', typeOid: 16400, schema: 'public', name: 'mood' });
  });

  it('insert: text, null, empty text and binary values', () => {
    const bin = Buffer.from([0, 1, 2, 255]);
    const buf = new Msg('I').u32(16390).char('N').tuple(['1', null, '', ['b', bin], 'é€']).build();
    const m = decodePgoutput(buf);
    if (m.tag !== 'insert') throw new Error(m.tag);
    expect(m.relationId).toBe(16390);
    expect(texts(m.new)).toEqual(['1', null, '', bin.toString('utf8'), 'é€']);
    expect(m.new[3]).toEqual(bin);
  });

  it('keeps values as views into the message (no copy)', () => {
    const buf = new Msg('I').u32(1).char('N').tuple(['abc']).build();
    const m = decodePgoutput(buf);
    if (m.tag !== 'insert') throw new Error(m.tag);
    const v = m.new[0] as Buffer;
    expect(Buffer.isBuffer(v)).toBe(true);
    expect(v.buffer).toBe(buf.buffer);
    expect(v.byteOffset).toBe(buf.byteOffset + buf.length - 3);
  });

  it('update without old tuple, with an unchanged TOAST value', () => {
    const buf = new Msg('U').u32(7).char('N').tuple(['1', UNCHANGED, null]).build();
    const m = decodePgoutput(buf);
    if (m.tag !== 'update') throw new Error(m.tag);
    expect(m.old).toBeUndefined();
    expect(texts(m.new)).toEqual(['1', UNCHANGED, null]);
    expect(m.new[1]).toBe(UNCHANGED);
  });

  it('update with the old key (K)', () => {
    const buf = new Msg('U').u32(7).char('K').tuple(['1', null, null]).char('N').tuple(['2', 'x', UNCHANGED]).build();
    const m = decodePgoutput(buf);
    if (m.tag !== 'update') throw new Error(m.tag);
    expect(m.old?.kind).toBe('K');
    expect(texts(m.old!.tuple)).toEqual(['1', null, null]);
    expect(texts(m.new)).toEqual(['2', 'x', UNCHANGED]);
  });

  it('update with the old row (O, replica identity full)', () => {
    const buf = new Msg('U').u32(7).char('O').tuple(['1', 'a']).char('N').tuple(['1', 'b']).build();
    const m = decodePgoutput(buf);
    if (m.tag !== 'update') throw new Error(m.tag);
    expect(m.old?.kind).toBe('O');
    expect(texts(m.old!.tuple)).toEqual(['1', 'a']);
    expect(texts(m.new)).toEqual(['1', 'b']);
  });

  it('update refuses an old tuple not followed by N', () => {
    const buf = new Msg('U').u32(7).char('K').tuple(['1']).char('K').tuple(['2']).build();
    expect(() => decodePgoutput(buf)).toThrow(/expected 'N'/);
  });

  it('delete with key (K) and with old row (O)', () => {
    const k = decodePgoutput(new Msg('D').u32(9).char('K').tuple(['5', null]).build());
    expect(k).toMatchObject({ tag: 'delete', relationId: 9, old: { kind: 'K' } });
    if (k.tag !== 'delete') throw new Error(k.tag);
    expect(texts(k.old.tuple)).toEqual(['5', null]);
    const o = decodePgoutput(new Msg('D').u32(9).char('O').tuple(['5', 'z']).build());
    if (o.tag !== 'delete') throw new Error(o.tag);
    expect(o.old.kind).toBe('O');
    expect(texts(o.old.tuple)).toEqual(['5', 'z']);
  });

  it('delete refuses a new tuple', () => {
    expect(() => decodePgoutput(new Msg('D').u32(9).char('N').tuple(['5']).build())).toThrow(/delete from relation 9/);
  });

  it.each([
    [0, false, false],
    [1, true, false],
    [2, false, true],
    [3, true, true],
  ])('truncate with options %i', (options, cascade, restartIdentity) => {
    const buf = new Msg('T').i32(2).u8(options).u32(16390).u32(4000000000).build();
    expect(decodePgoutput(buf)).toEqual({ tag: 'truncate', relationIds: [16390, 4000000000], cascade, restartIdentity });
  });

  it('logical message: transactional flag, lsn, prefix, content bytes', () => {
    const content = Buffer.from([104, 105, 0, 200]);
    const t = decodePgoutput(new Msg('M').u8(1).u64(0x99n).str('dbferry').i32(content.length).raw(content).build());
    expect(t).toEqual({ tag: 'message', transactional: true, lsn: 0x99n, prefix: 'dbferry', content });
    const nt = decodePgoutput(new Msg('M').u8(0).u64(0x9an).str('').i32(0).build());
    expect(nt).toEqual({ tag: 'message', transactional: false, lsn: 0x9an, prefix: '', content: Buffer.alloc(0) });
  });

  it('decodes a message inside a larger frame (subarray of an XLogData payload)', () => {
    const inner = new Msg('I').u32(3).char('N').tuple(['x']).build();
    const frame = Buffer.concat([Buffer.alloc(25, 0xee), inner]);
    const m = decodePgoutput(frame.subarray(25));
    expect(m.tag).toBe('insert');
    if (m.tag === 'insert') expect(texts(m.new)).toEqual(['x']);
  });

  describe('protocol 2: transactions streamed while they run', () => {
    it('stream start, stop, commit and abort', () => {
      expect(decodePgoutput(new Msg('S').u32(0xfffffff1).u8(1).build())).toEqual({ tag: 'stream-start', xid: 0xfffffff1, first: true });
      expect(decodePgoutput(new Msg('S').u32(7).u8(0).build())).toEqual({ tag: 'stream-start', xid: 7, first: false });
      expect(decodePgoutput(new Msg('E').build())).toEqual({ tag: 'stream-stop' });
      expect(decodePgoutput(new Msg('c').u32(7).u8(0).u64(0x100n).u64(0x130n).i64(PG_US).build())).toEqual({
        tag: 'stream-commit',
        xid: 7,
        flags: 0,
        commitLsn: 0x100n,
        endLsn: 0x130n,
        commitTime: EPOCH_US,
      });
      expect(decodePgoutput(new Msg('A').u32(7).u32(9).build())).toEqual({ tag: 'stream-abort', xid: 7, subxid: 9 });
    });

    it('inside a stream block, row, relation, truncate and logical messages carry their (sub)transaction id first', () => {
      const insert = decodePgoutput(new Msg('I').u32(9).u32(3).char('N').tuple(['x']).build(), true);
      expect(insert).toMatchObject({ tag: 'insert', xid: 9, relationId: 3 });
      const update = decodePgoutput(new Msg('U').u32(9).u32(3).char('K').tuple(['1']).char('N').tuple(['2']).build(), true);
      expect(update).toMatchObject({ tag: 'update', xid: 9, relationId: 3, old: { kind: 'K' } });
      expect(decodePgoutput(new Msg('D').u32(9).u32(3).char('K').tuple(['1']).build(), true)).toMatchObject({ tag: 'delete', xid: 9, relationId: 3 });
      expect(decodePgoutput(new Msg('T').u32(9).i32(1).u8(0).u32(16390).build(), true)).toEqual({ tag: 'truncate', xid: 9, relationIds: [16390], cascade: false, restartIdentity: false });
      expect(decodePgoutput(new Msg('R').u32(9).u32(5).str('s').str('t').char('d').i16(0).build(), true)).toEqual({
        tag: 'relation',
        xid: 9,
        relationId: 5,
        schema: 's',
        name: 't',
        replicaIdentity: 'd',
        columns: [],
      });
      expect(decodePgoutput(new Msg('Y').u32(9).u32(600).str('public').str('point').build(), true)).toEqual({ tag: 'type', xid: 9, typeOid: 600, schema: 'public', name: 'point' });
      expect(decodePgoutput(new Msg('M').u32(9).u8(1).u64(0x99n).str('dbferry').i32(0).build(), true)).toMatchObject({ tag: 'message', xid: 9, prefix: 'dbferry' });
    });

    it('the same bytes outside a stream block are a protocol 1 message: the id is not guessed', () => {
      // Read without the stream flag, the xid would be taken for the relation id and the rest would not fit.
      expect(() => decodePgoutput(new Msg('I').u32(9).u32(3).char('N').tuple(['x']).build())).toThrow(/expected 'N'/);
    });

    it('refuses a begin, commit or origin inside a stream block', () => {
      expect(() => decodePgoutput(new Msg('B').u64(1n).i64(1n).u32(1).build(), true)).toThrow(/inside a stream block/);
      expect(() => decodePgoutput(new Msg('C').u8(0).u64(1n).u64(2n).i64(1n).build(), true)).toThrow(/inside a stream block/);
    });
  });

  describe('malformed input', () => {
    it('names an unknown tag', () => {
      expect(() => decodePgoutput(Buffer.from('Zabc'))).toThrow("unknown message tag 'Z' (0x5a)");
      expect(() => decodePgoutput(Buffer.from([0x01]))).toThrow('unknown message tag 0x01');
    });

    it('rejects an empty buffer', () => {
      expect(() => decodePgoutput(Buffer.alloc(0))).toThrow(/empty/);
    });

    it('names an unknown value kind', () => {
      const buf = new Msg('I').u32(3).char('N').i16(1).char('x').build();
      expect(() => decodePgoutput(buf)).toThrow("unknown tuple value kind 'x' (0x78) in column 1 of 1");
    });

    it.each([
      ['begin', new Msg('B').u64(1n).i64(1n).build()],
      ['relation name', new Msg('R').u32(1).str('public').raw(Buffer.from('t')).build()],
      ['tuple value length', new Msg('I').u32(3).char('N').i16(1).char('t').i32(10).raw(Buffer.from('abc')).build()],
      ['tuple column count', new Msg('I').u32(3).char('N').i16(2).char('n').build()],
      ['message content', new Msg('M').u8(1).u64(1n).str('p').i32(5).raw(Buffer.from('ab')).build()],
    ])('reports a truncated %s instead of reading past the end', (_what, buf) => {
      expect(() => decodePgoutput(buf)).toThrow(/truncated/);
    });

    it('rejects trailing bytes', () => {
      const buf = Buffer.concat([new Msg('I').u32(3).char('N').tuple(['x']).build(), Buffer.from([0])]);
      expect(() => decodePgoutput(buf)).toThrow(/1 unexpected trailing bytes/);
    });
  });

});
