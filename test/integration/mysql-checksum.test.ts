import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createConnection, type Connection } from 'mysql2/promise';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { SourceEngine } from '../../activities/engine';
import { mysqlEngine } from '../../activities/mysql/mysql-engine';
import { checksumQuery } from '../../activities/pg/checksum';
import { createSchemaStatements } from '../../activities/target/ddl';
import { startMariaDb, type MariaDbServer } from '../../local/mariadb-server';
import { parsePlan, qualifiedKey, type SchemaModel, type TableModel } from '../../plan';
import { qualifiedTable, quoteIdent } from '../../plan/sql-names';
import { createDatabase, dropDatabase, uniqueName } from '../support/databases';

jest.setTimeout(3 * 60_000);

/**
 * The cross-engine checksum against real MariaDB and PostgreSQL: the fixture's tables (every
 * converted type and its edge values) read and copied through the MySQL engine's reader into
 * tables made from its converted model; the source's checksum (MariaDB SQL) equals the target's
 * (PostgreSQL SQL), and one changed value on the target, of any kind, makes them differ.
 */
describe('cross-engine checksum (MariaDB → PostgreSQL)', () => {
  let maria: MariaDbServer;
  let my: Connection;
  let engine: SourceEngine;
  let model: SchemaModel;
  let pg: Client;
  const targetDb = uniqueName('mysql_checksum');

  beforeAll(async () => {
    maria = await startMariaDb({ baseDir: join(__dirname, '..', '..', '.tmp', 'test-servers'), timeZone: '-03:00' });
    my = await createConnection({ uri: maria.url(), multipleStatements: true });
    await my.query("SET sql_mode = ''; CREATE DATABASE shop CHARACTER SET utf8mb4; USE shop;");
    await my.query(readFileSync(join(__dirname, '..', 'fixtures', 'mysql-edge.sql'), 'utf8'));
    await my.query("INSERT INTO `we``ird` VALUES (1, UNHEX('00FF10'), 'ä€'), (2, NULL, NULL), (3, '', '')");
    process.env.DBFERRY_TEST_MYSQL_URL = maria.url('shop');
    const parsed = parsePlan({ name: 'checksum', mode: 'full-load', source: { engine: 'mysql', url: 'env:DBFERRY_TEST_MYSQL_URL' }, target: { engine: 'postgres', url: 'env:UNUSED' } });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    engine = await mysqlEngine(parsed.plan);
    model = await engine.introspect();
    pg = new Client({ connectionString: await createDatabase('target', targetDb) });
    await pg.connect();
    for (const s of createSchemaStatements(model)) await pg.query(s);
    const reader = await engine.joinReadPoint('');
    try {
      for (const t of model.tables) {
        const cols = t.columns.map((c) => quoteIdent(c.name)).join(', ');
        await pipeline(await reader.copyOut(t, { kind: 'whole' }, 'text'), pg.query(copyFrom(`COPY ${qualifiedTable(t.schema, t.name)} (${cols}) FROM STDIN`)));
      }
    } finally {
      await reader.close();
    }
  });

  afterAll(async () => {
    await pg?.end();
    await my?.end();
    await maria?.stop();
    await dropDatabase('target', targetDb);
  });

  const table = (name: string): TableModel => model.tables.find((t) => qualifiedKey(t) === `shop.${name}`)!;
  const compare = async (t: TableModel) => {
    const reader = await engine.openReader();
    try {
      const s = await reader.checksum(t, { kind: 'whole' }, true);
      const r = (await pg.query(checksumQuery(t, true, '', s.method))).rows[0] as { rows: string; checksum: string };
      return { method: s.method, source: { rows: s.rows, checksum: s.checksum }, target: r };
    } finally {
      await reader.close();
    }
  };

  it('is equal for every table after the conversions', async () => {
    for (const t of model.tables) {
      const r = await compare(t);
      expect({ table: qualifiedKey(t), ...r.target }).toEqual({ table: qualifiedKey(t), ...r.source });
      expect(r.method).toBe('canonical-md5');
    }
  });

  it('refuses, naming table, column and value, what the target type cannot hold (never converts it silently)', async () => {
    await my.query("CREATE TABLE shop.odd (id int PRIMARY KEY, flag tinyint(1), t varchar(10)); INSERT INTO shop.odd VALUES (1, 1, 'a'), (2, 2, 'b')");
    try {
      const odd = (await engine.introspect()).tables.find((t) => t.name === 'odd')!;
      const reader = await engine.openReader();
      try {
        const drain = async () => {
          for await (const chunk of await reader.copyOut(odd, { kind: 'whole' }, 'text')) void chunk;
        };
        await expect(drain()).rejects.toThrow('shop.odd.flag holds 2: tinyint(1) converts to boolean, which holds only 0 and 1');
        await my.query("UPDATE shop.odd SET flag = 0 WHERE id = 2; UPDATE shop.odd SET t = CONCAT('x', CHAR(0), 'y') WHERE id = 1");
      } finally {
        await reader.close();
      }
      const again = await engine.openReader();
      try {
        const drain = async () => {
          for await (const chunk of await again.copyOut(odd, { kind: 'whole' }, 'text')) void chunk;
        };
        await expect(drain()).rejects.toThrow('shop.odd.t holds a NUL character: PostgreSQL text cannot hold it');
      } finally {
        await again.close();
      }
    } finally {
      await my.query('DROP TABLE shop.odd');
    }
  });

  // One change on the target, of each kind a conversion could hide; each undone afterwards.
  const changes: Array<[string, string, string]> = [
    ['a microsecond', `UPDATE shop."edge values" SET dtm = dtm + interval '1 microsecond' WHERE id = 1`, `UPDATE shop."edge values" SET dtm = dtm - interval '1 microsecond' WHERE id = 1`],
    ['a trailing space', `UPDATE shop."edge values" SET vc = vc || ' ' WHERE id = 1`, `UPDATE shop."edge values" SET vc = rtrim(vc) || ' ' WHERE id = 1`],
    ['one byte of a blob', `UPDATE shop."we\`ird" SET payload = set_byte(payload, 1, 254) WHERE id = 1`, `UPDATE shop."we\`ird" SET payload = set_byte(payload, 1, 255) WHERE id = 1`],
    ['NULL for an empty string', `UPDATE shop."edge values" SET c = NULL WHERE id = 2`, `UPDATE shop."edge values" SET c = '' WHERE id = 2`],
    ['the last bit of a double', `UPDATE shop."edge values" SET dbl = 1.2345678901234569e-15 WHERE id = 4`, `UPDATE shop."edge values" SET dbl = 1.2345678901234567e-15 WHERE id = 4`],
    ['a double by a factor of ten', `UPDATE shop."edge values" SET dbl = dbl * 10 WHERE id = 2`, `UPDATE shop."edge values" SET dbl = 2.2250738585072014e-308 WHERE id = 2`],
    ['a float', `UPDATE shop."edge values" SET f = 0.10000001 WHERE id = 4`, `UPDATE shop."edge values" SET f = 0.1 WHERE id = 4`],
    ['a boolean', `UPDATE shop."edge values" SET flag = NOT flag WHERE id = 1`, `UPDATE shop."edge values" SET flag = NOT flag WHERE id = 1`],
    ['a time by a microsecond', `UPDATE shop."edge values" SET tm = tm + interval '1 microsecond' WHERE id = 2`, `UPDATE shop."edge values" SET tm = tm - interval '1 microsecond' WHERE id = 2`],
    ['a timestamp by an hour', `UPDATE shop."edge values" SET ts = ts + interval '1 hour' WHERE id = 1`, `UPDATE shop."edge values" SET ts = ts - interval '1 hour' WHERE id = 1`],
    ['the last digit of a decimal', `UPDATE shop."edge values" SET d65 = d65 + 1e-30 WHERE id = 1`, `UPDATE shop."edge values" SET d65 = d65 - 1e-30 WHERE id = 1`],
    ['a bit', `UPDATE shop."edge values" SET b64 = b64 # B'0000000000000000000000000000000000000000000000000000000000000001' WHERE id = 4`, `UPDATE shop."edge values" SET b64 = b64 # B'0000000000000000000000000000000000000000000000000000000000000001' WHERE id = 4`],
    ['one character of latin1 text', `UPDATE shop."edge values" SET lat = replace(lat, '€', 'E') WHERE id = 1`, `UPDATE shop."edge values" SET lat = replace(lat, 'E', '€') WHERE id = 1`],
    ['a set member', `UPDATE shop."edge values" SET st = 'x,y' WHERE id = 1`, `UPDATE shop."edge values" SET st = 'x,z' WHERE id = 1`],
    ['a year', `UPDATE shop."edge values" SET yr = 2154 WHERE id = 1`, `UPDATE shop."edge values" SET yr = 2155 WHERE id = 1`],
  ];
  it.each(changes)('says "different" for %s', async (_what, change, undo) => {
    const t = table(/shop\."we`ird"/.test(change) ? 'we`ird' : 'edge values');
    await pg.query(change);
    const changed = await compare(t);
    expect(changed.target.rows).toBe(changed.source.rows);
    expect(changed.target.checksum).not.toBe(changed.source.checksum);
    await pg.query(undo);
    const back = await compare(t);
    expect(back.target).toEqual(back.source);
  });
});
