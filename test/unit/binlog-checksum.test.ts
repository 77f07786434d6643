import { crc32 } from 'node:zlib';
import type ZongJi from '@vlasky/zongji';
import { verifyChecksums } from '../../activities/mysql/binlog-stream';

/** A binlog dump packet as mysql2 hands it over: 4 header bytes, the OK byte, the event. */
function packet(event: Buffer) {
  const buffer = Buffer.concat([Buffer.alloc(4), Buffer.from([0]), event]);
  return { buffer, offset: 4, end: buffer.length };
}

/** An event (19-byte header with its end position, a body) and its CRC32. */
function event(body: string, nextPosition: number): Buffer {
  const header = Buffer.alloc(19);
  header.writeUInt32LE(nextPosition, 13);
  const bytes = Buffer.concat([header, Buffer.from(body)]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32(bytes));
  return Buffer.concat([bytes, crc]);
}

describe('binlog event checksums', () => {
  class Binlog {}
  function reader() {
    const handled: unknown[] = [];
    const conn = { _command: new Binlog(), handlePacket: (p: unknown) => void handled.push(p) };
    const z = { useChecksum: true, connection: conn } as unknown as ZongJi;
    const bad: number[] = [];
    verifyChecksums(z, (at) => bad.push(at));
    return { conn, bad, handled };
  }

  test('an event whose CRC32 matches passes; one changed byte is reported with its position, and still handed on', () => {
    const { conn, bad, handled } = reader();
    conn.handlePacket(packet(event('a row image', 1234)));
    expect(bad).toEqual([]);
    const corrupt = event('a row image', 5678);
    corrupt[25] ^= 0x01;
    conn.handlePacket(packet(corrupt));
    expect(bad).toEqual([5678]);
    expect(handled).toHaveLength(2);
  });

  test('packets of other commands (the queries before the dump) are not checked', () => {
    const { conn, bad } = reader();
    conn._command = new (class Query {})();
    const corrupt = event('x'.repeat(20), 1);
    corrupt[20] ^= 0xff;
    conn.handlePacket(packet(corrupt));
    expect(bad).toEqual([]);
  });
});
