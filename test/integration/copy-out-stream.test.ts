import { createHash } from 'node:crypto';
import { to as libraryCopyTo } from 'pg-copy-streams';
import type { Client } from 'pg';
import { copyOutStream } from '../../activities/pg/copy-out-stream';
import { serverUrl, withClient } from '../support/databases';

/**
 * The load reads the source through copyOutStream (pg-copy-streams with a faster reader of the
 * server's messages): what it hands over must be byte for byte what pg-copy-streams hands over,
 * whatever the rows, and the connection must be pg's again afterwards, after an error too.
 */
describe('COPY TO through the faster message reader', () => {
  async function read(c: Client, stream: ReturnType<typeof libraryCopyTo>) {
    const hash = createHash('sha256');
    let bytes = 0;
    let chunks = 0;
    for await (const chunk of c.query(stream) as unknown as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bytes += chunk.length;
      chunks++;
    }
    return { sha: hash.digest('hex'), bytes, chunks, rowCount: stream.rowCount };
  }

  const queries = {
    // Rows of every size: many per socket read, and rows far larger than one (cut many times).
    'mixed sizes, text': `COPY (SELECT g, repeat(md5(g::text), CASE WHEN g % 500 = 0 THEN 40000 ELSE g % 7 END), CASE WHEN g % 3 = 0 THEN NULL ELSE g * 1.5 END
                                FROM generate_series(1, 20000) g) TO STDOUT`,
    'mixed sizes, binary': `COPY (SELECT g, repeat(md5(g::text), CASE WHEN g % 500 = 0 THEN 40000 ELSE g % 7 END)::bytea, '2024-02-29 12:34:56.789+00'::timestamptz + g * interval '1 second'
                                  FROM generate_series(1, 20000) g) TO STDOUT WITH (FORMAT binary)`,
    'no rows': `COPY (SELECT 1 WHERE false) TO STDOUT WITH (FORMAT binary)`,
  };

  it.each(Object.entries(queries))('%s: the same bytes and row count as pg-copy-streams', async (_name, sql) => {
    await withClient(serverUrl('source'), async (c) => {
      const expected = await read(c, libraryCopyTo(sql));
      const got = await read(c, copyOutStream(sql));
      expect(got.sha).toBe(expected.sha);
      expect(got.bytes).toBe(expected.bytes);
      expect(got.rowCount).toBe(expected.rowCount);
      // The connection is pg's again: a query after it answers.
      expect((await c.query('SELECT 42 AS n')).rows[0].n).toBe(42);
    });
  });

  it('skips the notices the server sends between rows, and keeps the rows around them', async () => {
    await withClient(serverUrl('source'), async (c) => {
      await c.query(`CREATE OR REPLACE FUNCTION pg_temp.noisy(g int) RETURNS int LANGUAGE plpgsql AS $$
                       BEGIN IF g % 1000 = 0 THEN RAISE NOTICE 'row %', g; END IF; RETURN g; END $$`);
      const sql = 'COPY (SELECT pg_temp.noisy(g), md5(g::text) FROM generate_series(1, 5000) g) TO STDOUT';
      const expected = await read(c, libraryCopyTo(sql));
      const got = await read(c, copyOutStream(sql));
      expect({ ...got, chunks: 0 }).toEqual({ ...expected, chunks: 0 });
      expect(got.rowCount).toBe(5000);
      expect((await c.query('SELECT 1 AS n')).rows[0].n).toBe(1);
    });
  });

  it('an error in the middle of the rows fails the stream with the server message, and the connection stays usable', async () => {
    await withClient(serverUrl('source'), async (c) => {
      const sql = 'COPY (SELECT g, 1 / (g - 30000), repeat(\'x\', 200) FROM generate_series(1, 40000) g) TO STDOUT';
      await expect(read(c, copyOutStream(sql))).rejects.toThrow(/division by zero/);
      expect((await c.query('SELECT 7 AS n')).rows[0].n).toBe(7);
    });
  });
});
