import type { Client } from 'pg';
import { sourceChecksum, checksumQuery, targetChecksum } from '../../activities/pg/checksum';
import { copyFormat, CopyRowHash } from '../../activities/pg/copy-hash';
import { copyOutStream } from '../../activities/pg/copy-out-stream';
import { qualifiedTable, quoteIdent } from '../../plan/sql-names';
import { sourceColumns } from '../../plan/schema-model';
import { introspectPostgres } from '../../activities/postgres/introspect';
import type { TableModel } from '../../plan/schema-model';
import { createDatabase, dropDatabase, uniqueName, withClient } from '../support/databases';

/**
 * The checksum validation relies on: equal rows give equal sums on two servers whatever their
 * order, one changed value changes the sum, and a table whose types have no hash function falls
 * back to the text form without spoiling the caller's snapshot transaction.
 */
describe('row checksums on real servers', () => {
  const a = uniqueName('cks_a');
  const b = uniqueName('cks_b');
  let urlA: string;
  let urlB: string;
  const setup = `
    CREATE TABLE "Plain Table" (id int PRIMARY KEY, "Amount" numeric(12,2), at timestamptz, tags text[], note text);
    CREATE TYPE mood AS ENUM ('sad', 'ok');
    CREATE TABLE odd (id int PRIMARY KEY, doc json, p point, m mood, ms mood[], at timestamp(3) with time zone);`;
  const rows = (order: string) => `
    INSERT INTO "Plain Table" SELECT g, g * 1.5, '2024-01-01'::timestamptz + g * interval '1 hour', ARRAY['a' || g, NULL], CASE WHEN g % 7 = 0 THEN NULL ELSE 'n' || g END
      FROM generate_series(1, 500) g ORDER BY g ${order};
    INSERT INTO odd SELECT g, json_build_object('k', g), point(g, -g), CASE WHEN g % 2 = 0 THEN 'ok' ELSE 'sad' END::mood,
      ARRAY['ok', 'sad']::mood[], '2024-01-01 00:00:00.123+00'::timestamptz + g * interval '1 day' FROM generate_series(1, 50) g ORDER BY g ${order};`;

  beforeAll(async () => {
    [urlA, urlB] = await Promise.all([createDatabase('source', a), createDatabase('target', b)]);
    await withClient(urlA, (c) => c.query(setup + rows('ASC')));
    // Other OIDs on the second server for the same enum (an enum's own hash is its OID's).
    await withClient(urlB, (c) => c.query("CREATE TYPE shift AS ENUM ('x'); CREATE TYPE shift2 AS ENUM ('y');" + setup + rows('DESC')));
  });

  afterAll(async () => {
    await Promise.all([dropDatabase('source', a), dropDatabase('target', b)]);
  });

  async function tables(url: string): Promise<TableModel[]> {
    return withClient(url, async (c) => (await introspectPostgres(c, () => true)).tables);
  }

  async function inSnapshot(url: string, t: TableModel) {
    return withClient(url, async (c) => {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const r = await sourceChecksum(c, t);
      // The transaction (and so an imported snapshot) is still usable after the fallback.
      const after = await c.query('SELECT 1 AS ok');
      await c.query('COMMIT');
      return { ...r, ok: after.rows[0].ok };
    });
  }

  it('hashes records (text forms for enums, json, geometry) and agrees across servers whatever the row order', async () => {
    const [ta, tb] = [await tables(urlA), await tables(urlB)];
    const plain = ta.find((t) => t.name === 'Plain Table')!;
    const odd = ta.find((t) => t.name === 'odd')!;
    const [pa, pb] = [await inSnapshot(urlA, plain), await inSnapshot(urlB, tb.find((t) => t.name === 'Plain Table')!)];
    expect(pa).toMatchObject({ rows: '500', method: 'record-hash', ok: 1 });
    expect(pb).toEqual(pa);
    const [oa, ob] = [await inSnapshot(urlA, odd), await inSnapshot(urlB, tb.find((t) => t.name === 'odd')!)];
    expect(oa).toMatchObject({ rows: '50', method: 'record-hash', ok: 1 });
    expect(ob).toEqual(oa);
  });

  it('agrees with itself under the text method too', async () => {
    const odd = (await tables(urlA)).find((t) => t.name === 'odd')!;
    const [x, y] = await Promise.all([urlA, urlB].map((u) => withClient(u, (c) => c.query(checksumQuery(odd, true, '', 'text-hash')))));
    expect(y.rows[0]).toEqual(x.rows[0]);
  });

  /** What a loader sums as it copies a table (load-task.ts): the stream of `COPY t (columns) TO STDOUT`. */
  async function summedWhileCopied(c: Client, t: TableModel) {
    const hash = new CopyRowHash(copyFormat(t));
    const cols = sourceColumns(t).map((col) => quoteIdent(col.name)).join(', ');
    const out = c.query(copyOutStream(`COPY ${qualifiedTable(t.schema, t.name)} (${cols}) TO STDOUT WITH (FORMAT ${copyFormat(t)})`));
    for await (const chunk of out as AsyncIterable<Buffer>) hash.update(chunk);
    return hash.finish();
  }

  it('copy-hash: the sum over the stream a loader copies equals the target\'s, in binary and in text, whatever the row order; one changed value differs', async () => {
    const [ta, tb] = [await tables(urlA), await tables(urlB)];
    for (const [name, format] of [['Plain Table', 'binary'], ['odd', 'text']] as const) {
      const [a, b] = [ta.find((t) => t.name === name)!, tb.find((t) => t.name === name)!];
      expect(copyFormat(a)).toBe(format);
      const copied = await withClient(urlA, (c) => summedWhileCopied(c, a));
      expect(copied.rows).toBe(name === 'odd' ? '50' : '500');
      const target = await withClient(urlB, (c) => targetChecksum(c, b, true, '', 'copy-hash'));
      expect(target).toEqual(copied);
      const changed = await withClient(urlB, async (c) => {
        await c.query('BEGIN');
        await c.query(name === 'odd' ? `UPDATE odd SET p = point(1, 2) WHERE id = 7` : `UPDATE "Plain Table" SET tags = ARRAY['a7', 'b'] WHERE id = 7`);
        const r = await targetChecksum(c, b, true, '', 'copy-hash');
        await c.query('ROLLBACK');
        return r;
      });
      expect(changed.rows).toBe(copied.rows);
      expect(changed.checksum).not.toBe(copied.checksum);
    }
  });

  it('changes when one value changes, with the method validation uses on the target', async () => {
    const plain = (await tables(urlA)).find((t) => t.name === 'Plain Table')!;
    const before = await inSnapshot(urlA, plain);
    await withClient(urlB, (c) => c.query(`UPDATE "Plain Table" SET "Amount" = "Amount" + 0.01 WHERE id = 250`));
    const target = await withClient(urlB, (c) => c.query(checksumQuery(plain, true, '', before.method)));
    expect(target.rows[0].rows).toBe('500');
    expect(target.rows[0].checksum).not.toBe(before.checksum);
  });
});
