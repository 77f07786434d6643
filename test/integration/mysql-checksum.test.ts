import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createConnection, type Connection } from 'mysql2/promise';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { SourceEngine } from '../../activities/engine';
import { mysqlCanonical, pgCanonical } from '../../activities/cross-engine/canonical';
import { mysqlEngine } from '../../activities/mysql/mysql-engine';
import { targetChecksum } from '../../activities/pg/checksum';
import { createSchemaStatements } from '../../activities/target/ddl';
import { postgisFindings, postgisOnTarget, withPostgisTypes } from '../../activities/target/postgis';
import { startMariaDb, type MariaDbServer } from '../../local/mariadb-server';
import { parsePlan, qualifiedKey, type SchemaModel, type TableModel } from '../../plan';
import { qualifiedTable, quoteIdent } from '../../plan/sql-names';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';

jest.setTimeout(3 * 60_000);

/**
 * The cross-engine checksum against real MariaDB and PostgreSQL: the fixture's tables (every
 * converted type and its edge values) read and copied through the MySQL engine's reader into
 * tables made from its converted model; the source's checksum (MariaDB SQL) equals the target's
 * (PostgreSQL SQL), and one changed value on the target, of any kind, makes them differ. The
 * target has PostGIS: spatial columns are geometry there (a second target without it keeps them
 * bytea, the portable form).
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
    // JSON documents as applications write them, which jsonb rewrites: key order, spacing,
    // duplicate keys, number notations, string escapes, surrogate pairs; JSON null and SQL NULL.
    await my.query('CREATE TABLE docs (id int PRIMARY KEY, d json)');
    const docs = [
      String.raw`{ "b" : 1, "a": {"y": [1, 1.0, 1e2, -0.0, 0.015, 1E-7], "x": "\u00e9\n\t\\ \/"} }`,
      '{"a": 1, "a": 2}',
      '[]', '{}', '"scalar"', '12345678901234567890.000', 'null', null,
      String.raw`["\ud83d\ude42", "🙂", 123456789012345678901234567890]`,
    ];
    for (const [i, d] of docs.entries()) await my.query('INSERT INTO docs VALUES (?, ?)', [i + 1, d]);
    process.env.DBFERRY_TEST_MYSQL_URL = maria.url('shop');
    const parsed = parsePlan({ name: 'checksum', mode: 'full-load', source: { engine: 'mysql', url: 'env:DBFERRY_TEST_MYSQL_URL' }, target: { engine: 'postgres', url: 'env:UNUSED' } });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    engine = await mysqlEngine(parsed.plan);
    pg = new Client({ connectionString: await createDatabase('target', targetDb) });
    await pg.connect();
    // What create-tables does: the spatial columns become PostGIS geometry (creating the extension).
    const spatial = await withPostgisTypes(pg, await engine.introspect());
    expect(spatial.created).toBe(true);
    model = spatial.model;
    for (const s of createSchemaStatements(model)) await pg.query(s);
    await copyTables(pg, model.tables);
  });

  const copyTables = async (target: Client, tables: TableModel[]) => {
    const reader = await engine.joinReadPoint('');
    try {
      for (const t of tables) {
        const cols = t.columns.map((c) => quoteIdent(c.name)).join(', ');
        await pipeline(await reader.copyOut(t, { kind: 'whole' }, 'text'), target.query(copyFrom(`COPY ${qualifiedTable(t.schema, t.name)} (${cols}) FROM STDIN`)));
      }
    } finally {
      await reader.close();
    }
  };

  afterAll(async () => {
    await pg?.end();
    await my?.end();
    await maria?.stop();
    await dropDatabase('target', targetDb);
  });

  const table = (name: string): TableModel => model.tables.find((t) => qualifiedKey(t) === `shop.${name}`)!;
  const compare = async (t: TableModel, target = pg) => {
    const reader = await engine.openReader();
    try {
      const s = await reader.checksum(t, { kind: 'whole' }, true);
      const r = await targetChecksum(target, t, true, '', s.method);
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

  it('writes a JSON document with a duplicate key as MySQL reads it (the first value), and says so', async () => {
    const [[src]] = (await my.query(`SELECT JSON_VALUE(d, '$.a') AS a FROM shop.docs WHERE id = 2`)) as unknown as [Array<{ a: string }>];
    expect(src!.a).toBe('1');
    expect((await pg.query(`SELECT d->>'a' AS a FROM shop.docs WHERE id = 2`)).rows[0].a).toBe('1');
    const reader = await engine.openReader();
    try {
      const out = await reader.copyOut(table('docs'), { kind: 'whole' }, 'text');
      for await (const chunk of out) void chunk;
      expect(out.conversions?.()).toBe('1 JSON document in d with duplicate keys written with the first value of each key (as MySQL reads them; PostgreSQL would keep the last)');
    } finally {
      await reader.close();
    }
  });

  it('makes the spatial columns PostGIS geometry of their kind, without a SRID MariaDB does not enforce', async () => {
    const types = await pg.query<{ name: string; type: string }>(
      `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'shop.places'::regclass AND attnum > 0 ORDER BY attnum`,
    );
    expect(Object.fromEntries(types.rows.map((r) => [r.name, r.type]))).toEqual({
      id: 'integer', pt: 'geometry(Point)', route: 'geometry(LineString)', area: 'geometry(Polygon)', spots: 'geometry(MultiPoint)',
      roads: 'geometry(MultiLineString)', regions: 'geometry(MultiPolygon)', things: 'geometry(GeometryCollection)', shape: 'geometry',
    });
    // The model the load and validation read says so too.
    expect(table('places').columns.find((c) => c.name === 'pt')).toMatchObject({ type: '"public"."geometry"(Point)', conversion: 'geometry', sourceType: 'point' });
    expect(model.extensions).toEqual([{ name: 'postgis', schema: 'public' }]);
  });

  it('gives each geometry the same canonical text on both sides (every kind, a hole, a collection, SRIDs 0, 4326 and 3857)', async () => {
    const t = table('places');
    for (const c of t.columns.filter((x) => x.conversion === 'geometry')) {
      const [mine] = await my.query(`SELECT id, ${mysqlCanonical(c)} AS v FROM shop.places ORDER BY id`);
      const theirs = await pg.query(`SELECT id, ${pgCanonical(c)} AS v FROM shop.places ORDER BY id`);
      expect({ column: c.name, values: theirs.rows }).toEqual({ column: c.name, values: mine });
    }
    const [[srids]] = (await my.query(`SELECT GROUP_CONCAT(DISTINCT ST_SRID(shape) ORDER BY ST_SRID(shape)) AS s FROM shop.places`)) as unknown as [Array<{ s: string }>];
    expect(srids!.s).toBe('0,3857,4326');
    const shapes = await pg.query(`SELECT id, ST_AsText(shape) AS text, ST_SRID(shape) AS srid, ST_Area(area) AS area FROM shop.places ORDER BY id`);
    expect(shapes.rows).toEqual([
      { id: 1, text: 'POINT(1 2)', srid: 4326, area: 96 },
      { id: 2, text: 'POLYGON((0 0,10 0,10 10,0 10,0 0),(2 2,4 2,4 4,2 4,2 2))', srid: 0, area: 4.5 },
      { id: 3, text: 'MULTIPOINT((1 1),(2 2))', srid: 3857, area: null },
      { id: 4, text: null, srid: null, area: null },
    ]);
  });

  it('keeps spatial columns bytea in MySQL\'s form on a target without PostGIS, and still compares them', async () => {
    // A target whose user may not create PostGIS (not a superuser; PostGIS is not a trusted
    // extension) and where nobody installed it: what create-tables does there.
    const role = uniqueName('nogis');
    const db = uniqueName('mysql_checksum_bytea');
    const password = `pw-${role}`;
    await withClient(serverUrl('target'), (c) => c.query(`CREATE ROLE ${quoteIdent(role)} LOGIN PASSWORD '${password}'`));
    await withClient(serverUrl('target'), (c) => c.query(`CREATE DATABASE ${quoteIdent(db)} OWNER ${quoteIdent(role)}`));
    const url = new URL(serverUrl('target', db));
    url.username = role;
    url.password = password;
    const plain = new Client({ connectionString: url.toString() });
    await plain.connect();
    try {
      const introspected = await engine.introspect();
      const decided = await withPostgisTypes(plain, introspected);
      expect(decided.created).toBe(false);
      const places = decided.model.tables.find((t) => t.name === 'places')!;
      expect(places.columns.filter((c) => c.conversion === 'geometry').map((c) => c.type)).toEqual(Array(8).fill('bytea'));
      expect(decided.model.extensions).toEqual([]);
      // Preflight said so beforehand, naming the columns and the remedy.
      const findings = postgisFindings([places], await postgisOnTarget(plain), { description: 'target', database: db, version: '15', exists: true });
      expect(findings).toEqual([expect.objectContaining({ code: 'spatial-as-bytea', message: expect.stringMatching(/shop\.places\.pt \(point\).*bytea in MySQL's own form.*have a superuser run CREATE EXTENSION postgis/) })]);

      for (const s of createSchemaStatements({ ...decided.model, tables: [places] })) await plain.query(s);
      await copyTables(plain, [places]);
      // MySQL's bytes exactly: the SRID (4 bytes, little-endian), then the WKB.
      const [[src]] = (await my.query('SELECT LOWER(HEX(shape)) AS h FROM shop.places WHERE id = 3')) as unknown as [Array<{ h: string }>];
      const loaded = await plain.query(`SELECT encode(shape, 'hex') AS h FROM shop.places WHERE id = 3`);
      expect(loaded.rows[0].h).toBe(src!.h);
      expect(src!.h.slice(0, 8)).toBe('110f0000');
      const equal = await compare(places, plain);
      expect(equal.target).toEqual(equal.source);
      await plain.query(`UPDATE shop.places SET shape = set_byte(shape, 0, 0) WHERE id = 3`);
      const changed = await compare(places, plain);
      expect(changed.target.checksum).not.toBe(changed.source.checksum);
    } finally {
      await plain.end();
      await dropDatabase('target', db);
      await withClient(serverUrl('target'), (c) => c.query(`DROP ROLE ${quoteIdent(role)}`));
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

  it('refuses a geometry whose SRID PostGIS would change, naming it (bytea would keep it)', async () => {
    await my.query("CREATE TABLE shop.far (id int PRIMARY KEY, g geometry); INSERT INTO shop.far VALUES (1, ST_GeomFromText('POINT(1 1)', 1000000))");
    try {
      const far = (await withPostgisTypes(pg, await engine.introspect())).model.tables.find((t) => t.name === 'far')!;
      expect(far.columns[1]!.type).toBe('"public"."geometry"');
      const reader = await engine.openReader();
      try {
        const drain = async () => {
          for await (const chunk of await reader.copyOut(far, { kind: 'whole' }, 'text')) void chunk;
        };
        await expect(drain()).rejects.toThrow('shop.far.g holds a geometry with SRID 1000000: PostGIS keeps SRIDs up to 999999');
      } finally {
        await reader.close();
      }
    } finally {
      await my.query('DROP TABLE shop.far');
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
    ['the last bit of a point\'s coordinate', `UPDATE shop.places SET pt = 'POINT(1 2.0000000000000004)' WHERE id = 2`, `UPDATE shop.places SET pt = 'POINT(1 2)' WHERE id = 2`],
    ['a coordinate of a polygon\'s hole', `UPDATE shop.places SET area = 'SRID=4326;POLYGON((0 0,10 0,10 10,0 10,0 0),(2 2,4 2,4 4,2 5,2 2))' WHERE id = 1`, `UPDATE shop.places SET area = 'SRID=4326;POLYGON((0 0,10 0,10 10,0 10,0 0),(2 2,4 2,4 4,2 4,2 2))' WHERE id = 1`],
    ['a coordinate inside a collection', `UPDATE shop.places SET things = 'SRID=4326;GEOMETRYCOLLECTION(POINT(1 1),LINESTRING(0 0,1 2),POLYGON((0 0,1 0,1 1,0 0)))' WHERE id = 1`, `UPDATE shop.places SET things = 'SRID=4326;GEOMETRYCOLLECTION(POINT(1 1),LINESTRING(0 0,1 1),POLYGON((0 0,1 0,1 1,0 0)))' WHERE id = 1`],
    ['a SRID', `UPDATE shop.places SET shape = ST_SetSRID(shape, 3857) WHERE id = 1`, `UPDATE shop.places SET shape = ST_SetSRID(shape, 4326) WHERE id = 1`],
    ['a number inside a JSON document', `UPDATE shop.docs SET d = jsonb_set(d, '{a,y,4}', '0.016') WHERE id = 1`, `UPDATE shop.docs SET d = jsonb_set(d, '{a,y,4}', '0.015') WHERE id = 1`],
    ['the last digit of a JSON number beyond 2^53', `UPDATE shop.docs SET d = '["🙂", "🙂", 123456789012345678901234567891]' WHERE id = 9`, `UPDATE shop.docs SET d = '["🙂", "🙂", 123456789012345678901234567890]' WHERE id = 9`],
    ['a JSON string', `UPDATE shop.docs SET d = jsonb_set(d, '{a,x}', '"e\\n\\t\\\\ /"') WHERE id = 1`, `UPDATE shop.docs SET d = jsonb_set(d, '{a,x}', '"é\\n\\t\\\\ /"') WHERE id = 1`],
    ['a JSON key', `UPDATE shop.docs SET d = '{"A": 1}' WHERE id = 2`, `UPDATE shop.docs SET d = '{"a": 1}' WHERE id = 2`],
    ['two rows\' JSON documents swapped', `UPDATE shop.docs SET d = CASE id WHEN 3 THEN '{}'::jsonb ELSE '[]'::jsonb END WHERE id IN (3, 4)`, `UPDATE shop.docs SET d = CASE id WHEN 3 THEN '[]'::jsonb ELSE '{}'::jsonb END WHERE id IN (3, 4)`],
    ['JSON null made SQL NULL', `UPDATE shop.docs SET d = NULL WHERE id = 7`, `UPDATE shop.docs SET d = 'null' WHERE id = 7`],
    ['a SRID 0 made 4326', `UPDATE shop.places SET regions = ST_SetSRID(regions, 4326) WHERE id = 2`, `UPDATE shop.places SET regions = ST_SetSRID(regions, 0) WHERE id = 2`],
  ];
  const changedTable = (sql: string) => (/shop\."we`ird"/.test(sql) ? 'we`ird' : /shop\.places/.test(sql) ? 'places' : /shop\.docs/.test(sql) ? 'docs' : 'edge values');
  it.each(changes)('says "different" for %s', async (_what, change, undo) => {
    const t = table(changedTable(change));
    await pg.query(change);
    const changed = await compare(t);
    expect(changed.target.rows).toBe(changed.source.rows);
    expect(changed.target.checksum).not.toBe(changed.source.checksum);
    await pg.query(undo);
    const back = await compare(t);
    expect(back.target).toEqual(back.source);
  });
});
