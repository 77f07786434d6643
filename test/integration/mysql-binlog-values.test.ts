import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AnyBinlogEvent, TableMapEntry, TableMapEvent } from '@vlasky/zongji';
import { createConnection, type Connection } from 'mysql2/promise';
import { binlogRowEncoder, BINLOG_VALUE_OPTIONS, readExactly } from '../../activities/mysql/binlog-values';
import { closeMysql, connectMysql, type MysqlEndpoint } from '../../activities/mysql/connection';
import { introspectMysql } from '../../activities/mysql/introspect';
import { conversionWords } from '../../activities/mysql/pg-text';
import { openMysqlReader } from '../../activities/mysql/reader';
import { startMariaDb, type MariaDbServer } from '../../local/mariadb-server';
import { qualifiedKey, type TableModel } from '../../plan';

/**
 * Binlog CDC writes a value exactly as the full load does. A real MariaDB (its zone +05:30) gets
 * the fixture's tables empty, then rows of every converted type and its edge values, an UPDATE
 * changing every column of a row and DELETEs; zongji reads them from the binlog (in a Node
 * process of its own, as on a worker: jest cannot load its ES module) and binlogRowEncoder
 * encodes them. Each row image equals, field for field, what the loader's COPY text holds for
 * that row read from the table before or after the change, under the worker's zone and under
 * another one.
 */

/** A row as text: PostgreSQL's text of each value, null for SQL NULL. */
type Row = Array<string | null>;

/** What a binlog reader process reports. */
type FromChild =
  | { kind: 'ready' }
  | { kind: 'image'; label: string; event: 'insert' | 'before' | 'after' | 'delete'; row: Row; changed: string[] }
  | { kind: 'sentinel' }
  | { kind: 'error'; message: string };

interface ChildJob {
  port: number;
  password: string;
  filename: string;
  position: number;
  serverId: number;
  /** The mysql2 options zongji is created with: BINLOG_VALUE_OPTIONS, or wrong ones to be refused. */
  options: Record<string, unknown>;
  tables: Array<{ label: string; model: TableModel }>;
}

// Loaded by a binlog reader process (see startReader): it reads the binlog instead of testing.
if (process.env.DBFERRY_BINLOG_READER) {
  process.once('message', (job) => void readBinlog(job as ChildJob));
} else {
  describe('binlog row values (MariaDB → PostgreSQL text)', binlogValuesSuite);
}

function binlogValuesSuite() {
  jest.setTimeout(120_000);
  let maria: MariaDbServer;
  let my: Connection;
  let tables: Array<{ label: string; model: TableModel }>;
  const readers: ChildProcess[] = [];
  // What each reader reported, and the loader's rows before and after the changes.
  const reported = new Map<string, FromChild[]>();
  let before: Map<string, Loaded>;
  let after: Map<string, Loaded>;

  beforeAll(async () => {
    maria = await startMariaDb({ baseDir: join(__dirname, '..', '..', '.tmp', 'test-servers'), timeZone: '+05:30' });
    my = await createConnection({ uri: maria.url(), multipleStatements: true });
    await my.query("SET GLOBAL binlog_row_metadata = 'FULL'; SET sql_mode = ''; CREATE DATABASE shop CHARACTER SET utf8mb4; USE shop;");
    const fixture = readFileSync(join(__dirname, '..', 'fixtures', 'mysql-edge.sql'), 'utf8');
    const inserts = fixture.match(/^INSERT INTO[\s\S]*?;$/gm)!;
    await my.query(fixture.replace(/^INSERT INTO[\s\S]*?;$/gm, ''));
    await my.query(EXTRA_TABLES);
    tables = await models(maria);
    const [[master]] = (await my.query('SHOW MASTER STATUS')) as unknown as [Array<{ File: string; Position: number }>];
    const job = { port: maria.port, password: maria.password, filename: master!.File, position: Number(master!.Position), tables };
    // The worker's own zone, one far from UTC and the server's, and zongji without its options.
    const runs: Array<[string, Record<string, unknown>, string | undefined]> = [
      ['worker zone', { ...BINLOG_VALUE_OPTIONS }, process.env.TZ],
      ['Pacific/Chatham', { ...BINLOG_VALUE_OPTIONS }, 'Pacific/Chatham'],
      ['without timezone', { dateStrings: true }, 'Pacific/Chatham'],
    ];
    await Promise.all(runs.map(([name, options, tz], i) => startReader(name, { ...job, options, serverId: 9100 + i }, tz)));

    for (const sql of inserts) await my.query(sql);
    await my.query(EXTRA_ROWS);
    await insertNumbers(my);
    before = await loadAll(maria, tables);
    await my.query(CHANGES);
    after = await loadAll(maria, tables);
    await my.query('INSERT INTO binlog_sentinel VALUES (1)');
    await Promise.all(runs.map(([name]) => until(name, (m) => m.kind === 'sentinel' || m.kind === 'error')));
  });

  afterAll(async () => {
    const exited = (r: ChildProcess) => new Promise<void>((resolve) => (r.exitCode !== null || r.signalCode !== null ? resolve() : r.once('exit', () => resolve()).kill()));
    await Promise.all(readers.map(exited));
    await my?.end();
    await maria?.stop();
  });

  /** A process reading the binlog from the position given, its reports collected under `name`. */
  const startReader = (name: string, job: ChildJob, tz: string | undefined) => {
    const env: NodeJS.ProcessEnv = { ...process.env, DBFERRY_BINLOG_READER: '1' };
    if (tz === undefined) delete env.TZ;
    else env.TZ = tz;
    const boot = `
      const { readFileSync } = require('node:fs');
      const swc = require('@swc/core');
      require.extensions['.ts'] = (m, file) => m._compile(swc.transformSync(readFileSync(file, 'utf8'), { filename: file, module: { type: 'commonjs' }, jsc: { target: 'es2022', parser: { syntax: 'typescript' } } }).code, file);
      require(${JSON.stringify(__filename)});`;
    // require() of zongji's ES module says it is experimental on Node 20.
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', '-e', boot], { cwd: join(__dirname, '..', '..'), env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    readers.push(child);
    reported.set(name, []);
    child.on('message', (m) => reported.get(name)!.push(m as FromChild));
    child.send(job);
    return until(name, (m) => m.kind === 'ready');
  };

  const until = async (name: string, done: (m: FromChild) => boolean) => {
    const deadline = Date.now() + 60_000;
    while (!reported.get(name)!.some(done)) {
      if (Date.now() > deadline) throw new Error(`${name}: no report after 60 s (${JSON.stringify(reported.get(name)!.slice(-3))})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const images = (name: string, label: string, event: string) =>
    reported.get(name)!.filter((m): m is Extract<FromChild, { kind: 'image' }> => m.kind === 'image' && m.label === label && m.event === event);

  it('reads every row inserted as the loader reads it, table by table, in the worker zone and in another', () => {
    for (const run of ['worker zone', 'Pacific/Chatham']) {
      expect(reported.get(run)!.filter((m) => m.kind === 'error')).toEqual([]);
      for (const { label, model } of tables) {
        const inserted = images(run, label, 'insert').map((m) => m.row);
        expect({ run, label, differences: differences(model, before.get(label)!.rows, inserted) }).toEqual({ run, label, differences: [] });
      }
    }
  });

  it('counts the values it changed as the loader does (zero dates, JSON with duplicate keys)', () => {
    for (const { label, model } of tables) {
      const counts = new Map<string, number>();
      for (const m of images('worker zone', label, 'insert')) for (const c of m.changed) counts.set(c, (counts.get(c) ?? 0) + 1);
      const words = [...counts].map(([c, n]) => conversionWords(model.columns.find((x) => x.name === c)!, n));
      // The loader's phrases, each starting with its count.
      const loaded = before.get(label)!.conversions?.split(/; (?=\d)/) ?? [];
      expect({ label, conversions: words.sort() }).toEqual({ label, conversions: loaded.sort() });
    }
    expect(before.get('shop.edge values')!.conversions).toMatch(/zero or invalid dates? in dt/);
  });

  it('reads an UPDATE of every column and DELETEs: old images as the rows were, new ones as they are', () => {
    const edge = tables.find((t) => t.label === 'shop.edge values')!;
    const old = images('worker zone', edge.label, 'before').map((m) => m.row);
    const now = images('worker zone', edge.label, 'after').map((m) => m.row);
    expect(old).toHaveLength(1);
    // Every column changed (the key too).
    expect(old[0]!.map((v, i) => v === now[0]![i])).toEqual(old[0]!.map(() => false));
    expect(differences(edge.model, before.get(edge.label)!.rows.filter((r) => r[0] === '1'), old)).toEqual([]);
    expect(differences(edge.model, after.get(edge.label)!.rows.filter((r) => r[0] === '11'), now)).toEqual([]);
    const deleted = images('worker zone', edge.label, 'delete');
    expect(differences(edge.model, before.get(edge.label)!.rows.filter((r) => r[0] === '2'), deleted.map((m) => m.row))).toEqual([]);
    // The deleted row's zero dates are counted there too.
    expect(deleted[0]!.changed.sort()).toEqual(['dt', 'dtm', 'ts']);
    for (const { label, model } of tables) {
      const changes = [...images('worker zone', label, 'before'), ...images('worker zone', label, 'after'), ...images('worker zone', label, 'delete')];
      const byEvent = (e: string) => changes.filter((m) => m.event === e).map((m) => m.row);
      const keyOf = rowKey(model);
      const was = new Set(before.get(label)!.rows.map(keyOf));
      expect(differences(model, before.get(label)!.rows.filter((r) => byEvent('before').some((b) => keyOf(b) === keyOf(r))), byEvent('before'))).toEqual([]);
      expect(differences(model, after.get(label)!.rows.filter((r) => byEvent('after').some((a) => keyOf(a) === keyOf(r))), byEvent('after'))).toEqual([]);
      expect(byEvent('delete').every((r) => was.has(keyOf(r)))).toBe(true);
    }
  });

  it('gives the exact values, independently of the loader', () => {
    const edge = columnsOf(tables, 'shop.edge values', images('worker zone', 'shop.edge values', 'insert'));
    expect(edge(1, 'dtm')).toBe('2024-02-29 23:59:59.999999');
    expect(edge(1, 'biu')).toBe('18446744073709551615');
    expect(edge(1, 'naïve Ü')).toBe('emoji 🙂 and 漢字');
    expect(edge(1, 'j')).toContain('"big": 12345678901234567890123,');
    // 23:59:59.999999 at +05:30 is 18:29:59.999999 UTC.
    expect(edge(1, 'ts')).toBe('2024-02-29 18:29:59.999999+00');
    expect(edge(1, 'tm')).toBe('-838:59:59.000000');
    expect(edge(1, 'dbl')).toBe('1.7976931348623157e308');
    expect(edge(1, 'f')).toBe('3.4028234663852886e38');
    expect(edge(4, 'f')).toBe('0.10000000149011612');
    expect(edge(4, 'dbl')).toBe('0.0000000000000012345678901234568');
    expect(edge(1, 'b64')).toBe('1'.repeat(64));
    expect(edge(4, 'bin')).toBe('\\x41000000');
    expect(edge(4, 'yr')).toBe('0');
    expect(edge(2, 'dt')).toBeNull();
    expect(images('worker zone', 'shop.edge values', 'insert').find((m) => m.row[0] === '2')!.changed.sort()).toEqual(['dt', 'dtm', 'ts']);
    // latin1's five bytes cp1252 leaves undefined, and an invalid ENUM value (index 0).
    expect(edge(10, 'lat')).toBe('a\u0081\u008d\u008f\u0090\u009d€z');
    expect(edge(10, 'e')).toBe('');
    const places = columnsOf(tables, 'shop.places', images('worker zone', 'shop.places', 'insert'));
    // MySQL's form: the SRID (4 bytes, little-endian), then the WKB.
    expect(places(3, 'shape')).toBe('\\x' + Buffer.concat([uint32(3857), Buffer.from([1]), uint32(4), uint32(2), wkbPoint(1, 1), wkbPoint(2, 2)]).toString('hex'));
    const gis = columnsOf(tables, 'shop.places (PostGIS)', images('worker zone', 'shop.places (PostGIS)', 'insert'));
    expect(gis(1, 'pt')).toMatch(/^0101000020e6100000/);
    const temporal = columnsOf(tables, 'shop.temporal', images('worker zone', 'shop.temporal', 'insert'));
    expect(temporal(1, 'ts0')).toBe('2038-01-19 03:14:07+00');
    expect(temporal(1, 't1')).toBe('-00:00:00.5');
  });

  it('gives the same bytes whatever the worker process\'s time zone', () => {
    const strip = (run: string) => reported.get(run)!.filter((m) => m.kind === 'image');
    expect(strip('Pacific/Chatham')).toEqual(strip('worker zone'));
  });

  it('refuses, rather than misreads, rows zongji decoded without its options (a TIMESTAMP in the process zone)', () => {
    const errors = reported.get('without timezone')!.filter((m) => m.kind === 'error');
    expect(reported.get('without timezone')!.filter((m) => m.kind === 'image')).toEqual([]);
    expect(errors[0]).toEqual({ kind: 'error', message: expect.stringContaining('zongji was created without BINLOG_VALUE_OPTIONS (timezone is local, not Z)') });
  });

  it('can fail: one value changed anywhere is a difference naming its row and column', () => {
    const edge = tables.find((t) => t.label === 'shop.edge values')!;
    const rows = images('worker zone', edge.label, 'insert').map((m) => m.row);
    const altered = rows.map((r) => [...r]);
    const dtm = edge.model.columns.findIndex((c) => c.name === 'dtm');
    altered[0]![dtm] = '2024-02-29 23:59:59.999';
    expect(differences(edge.model, before.get(edge.label)!.rows, altered)).toEqual(['row 1: dtm is 2024-02-29 23:59:59.999999 in the load, 2024-02-29 23:59:59.999 from the binlog']);
    expect(differences(edge.model, before.get(edge.label)!.rows, rows.slice(1))).toEqual(['row 1: in the load, not from the binlog']);
  });
}

const uint32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

function wkbPoint(x: number, y: number): Buffer {
  const b = Buffer.alloc(21);
  b[0] = 1;
  b.writeUInt32LE(1, 1);
  b.writeDoubleLE(x, 5);
  b.writeDoubleLE(y, 13);
  return b;
}

/** Tables with the types and values the fixture has not (run after it, with sql_mode ''). */
const EXTRA_TABLES = `
  CREATE TABLE docs (id int PRIMARY KEY, d json);
  CREATE TABLE nums (id int PRIMARY KEY, d double, f float, d0 decimal(10,0), d5 decimal(5,5), d19 decimal(19,9));
  CREATE TABLE temporal (id int PRIMARY KEY, d0 datetime, d3 datetime(3), t0 time, t1 time(1), t3 time(3), t5 time(5),
    ts0 timestamp NULL DEFAULT NULL, ts3 timestamp(3) NULL DEFAULT NULL, dd date, y year);
  CREATE TABLE latin (id int PRIMARY KEY, c char(8) CHARACTER SET latin1, t text CHARACTER SET latin1, v varchar(300) CHARACTER SET latin1 COLLATE latin1_bin);
  CREATE TABLE bits (id int PRIMARY KEY, b3 bit(3), b9 bit(9), big set('m1','m2','m3','m4','m5','m6','m7','m8','m9','m10','m11','m12','m13','m14','m15','m16','m17','m18','m19','m20',
    'm21','m22','m23','m24','m25','m26','m27','m28','m29','m30','m31','m32','m33','m34','m35','m36','m37','m38','m39','m40'));
  CREATE TABLE gen (id int PRIMARY KEY, a int, v int AS (a * 2) VIRTUAL, s varchar(20) AS (CONCAT('a=', a)) PERSISTENT);
  CREATE TABLE binlog_sentinel (id int PRIMARY KEY);`;

const EXTRA_ROWS = `
  INSERT INTO \`edge values\` (id, lat, e) VALUES (10, CONCAT('a', UNHEX('818D8F909D80'), 'z'), 'not a member');
  INSERT INTO \`we\`\`ird\` VALUES (1, UNHEX('00FF10'), 'ä€'), (2, NULL, NULL), (3, '', ''), (4, REPEAT(UNHEX('00FF'), 70000), REPEAT('🙂\\t\\\\', 1000));
  INSERT INTO docs VALUES (1, '{ "b" : 1, "a": {"y": [1, 1.0, 1e2, -0.0, 0.015, 1E-7], "x": "\\\\u00e9\\\\n\\\\t\\\\\\\\ \\\\/"} }'),
    (2, '{"a": 1, "a": 2}'), (3, '[]'), (4, '"scalar"'), (5, '12345678901234567890.000'), (6, 'null'), (7, NULL),
    (8, '["\\\\ud83d\\\\ude42", "🙂", 123456789012345678901234567890]');
  INSERT INTO temporal VALUES
    (1, '2024-01-02 03:04:05', '2024-01-02 03:04:05.123', '-00:00:01', '-00:00:00.5', '-00:00:01.125', '-838:59:58.99999',
     '2038-01-19 08:44:07', '1970-01-01 05:30:01.001', '9999-12-31', 2000),
    (2, '0000-00-00 00:00:00', '1000-01-01 00:00:00.001', '00:00:00', '838:59:59.9', '00:00:00.000', '-00:00:00.00001',
     '0000-00-00 00:00:00', '2000-02-29 12:00:00.999', '2024-02-00', 0),
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
  INSERT INTO latin VALUES (1, UNHEX('80818D8F909D9F41'), CONCAT('x', UNHEX('0102090A0D1B5C7F80819FA0FF')), UNHEX('E9C3A9FFFE')),
    (2, 'ab  ', '', 'trailing  '), (3, NULL, NULL, NULL);
  INSERT INTO bits VALUES (1, b'101', b'100000001', 'm1,m33,m40'), (2, 0, 0, ''), (3, NULL, NULL, NULL);
  INSERT INTO gen (id, a) VALUES (1, 5), (2, NULL);
  INSERT INTO customers VALUES ('EU', 1, 'Ann'), ('US', 1, 'Bob');
  INSERT INTO orders (id, region, customer_no, placed_at, updated_at, status, total) VALUES (1000, 'EU', 1, '2024-03-31 02:30:00', '2024-03-31 02:30:00', 'paid', 12.50);
  INSERT INTO \`order items\` VALUES (1000, 1, 'sku-1', 2), (1000, 2, 'sku-2', 1);
  INSERT INTO shipments VALUES (1000, 'ups'), (1000, 'ups');
  INSERT INTO log VALUES ('2024-01-01 00:00:00.123', 'one'), ('2024-01-01 00:00:00.123', 'one'), (NULL, NULL);`;

/** An UPDATE changing every column of a row (its key too), and DELETEs. */
const CHANGES = `
  UPDATE \`edge values\` SET id = 11, flag = 0, ti = -1, tiu = 1, si = -2, siu = 2, mi = -3, miu = 3, i = -4, iu = 4, bi = -5,
    biu = 9223372036854775808, d65 = -1.5, dm = 0.01, f = -2.5e-10, dbl = -1e300, b1 = b'0', b64 = b'1', c = 'c2', vc = 'v2',
    txt = 't2', lat = 'ü', bin = 0x01, vb = 0x02, e = 'a', st = 'y', j = '{"k": [1.0, -0, 1e2]}', dt = '1999-12-31',
    dtm = '1000-01-01 00:00:00.000001', ts = '2038-01-19 08:44:07.999999', tm = '00:00:00.000001', yr = 1901,
    \`select\` = 's2', \`Mixed Case\` = 8, \`naïve Ü\` = '🙂🙂' WHERE id = 1;
  DELETE FROM \`edge values\` WHERE id = 2;
  UPDATE places SET pt = ST_GeomFromText('POINT(3 4)', 3857), shape = NULL WHERE id = 1;
  DELETE FROM places WHERE id = 3;
  UPDATE temporal SET ts3 = '2001-01-01 00:00:00.5', t5 = '-00:00:00.5' WHERE id = 1;
  UPDATE gen SET a = 6 WHERE id = 1;
  DELETE FROM log WHERE msg IS NULL;
  UPDATE orders SET status = 'shipped' WHERE id = 1000;`;

/** Doubles of every magnitude (as JavaScript prints them, which the server reads exactly) and decimals. */
async function insertNumbers(my: Connection): Promise<void> {
  let seed = 42;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const special = [0, 1, -1, 0.1, 0.5, 100, 1e15, 1e16, 123456789012345, 1234567890123456.8, 12345678901234568, 1e-14, 1e-15, 1e-16, 2.5e-7, 5e-324,
    2.2250738585072014e-308, 1.7976931348623157e308, 3.4028234663852886e38, 1.17549435e-38, 4.35, 0.1 + 0.2, 1e21, 1e22, 2 ** 53, 2 ** 53 + 2];
  const values = [...special, ...Array.from({ length: 300 }, (_, i) => (random() - 0.5) * 10 ** Math.round(random() * 40 - 20 + (i % 2 ? 0 : (random() - 0.5) * 560)))];
  const decimal = (digits: number, scale: number) => {
    const s = Array.from({ length: digits }, () => Math.floor(random() * 10)).join('');
    return `${random() < 0.5 ? '-' : ''}${s.slice(0, digits - scale) || '0'}${scale ? '.' + s.slice(digits - scale) : ''}`;
  };
  const rows = values.map((v, i) => [i + 1, v, Math.abs(v) < 3.4e38 ? v : null, decimal(10, 0), decimal(5, 5), decimal(19, 9)]);
  await my.query('INSERT INTO nums VALUES ?', [rows]);
}

/** The introspected model of each migrated table (places also as PostGIS geometry, whose text is EWKB). */
async function models(maria: MariaDbServer): Promise<Array<{ label: string; model: TableModel }>> {
  const c = await connectMysql(endpoint(maria), 'introspect');
  const { model } = await introspectMysql(c, (schema, name) => schema === 'shop' && name !== 'binlog_sentinel').finally(() => closeMysql(c));
  const out = model.tables.map((t) => ({ label: qualifiedKey(t), model: t }));
  const places = out.find((t) => t.label === 'shop.places')!.model;
  const gis = places.columns.map((c) => (c.conversion === 'geometry' ? { ...c, type: '"public"."geometry"' } : c));
  return [...out, { label: 'shop.places (PostGIS)', model: { ...places, columns: gis } }];
}

const endpoint = (maria: MariaDbServer): MysqlEndpoint => ({ url: maria.url('shop'), description: 'source test', database: 'shop', secrets: [] });

interface Loaded {
  rows: Row[];
  conversions: string | undefined;
}

/** Each table as the full load reads it: its COPY text, parsed back into fields. */
async function loadAll(maria: MariaDbServer, tables: Array<{ label: string; model: TableModel }>): Promise<Map<string, Loaded>> {
  const reader = await openMysqlReader(endpoint(maria), 'test');
  try {
    const out = new Map<string, Loaded>();
    for (const { label, model } of tables) {
      const copy = await reader.copyOut(model, { kind: 'whole' }, 'text');
      const chunks: Buffer[] = [];
      for await (const chunk of copy) chunks.push(Buffer.from(chunk as Buffer | string));
      const text = Buffer.concat(chunks).toString('utf8');
      const rows = text === '' ? [] : text.replace(/\n$/, '').split('\n').map((line) => line.split('\t').map(unescapeCopy));
      out.set(label, { rows, conversions: copy.conversions?.() });
    }
    return out;
  } finally {
    await reader.close();
  }
}

function unescapeCopy(field: string): string | null {
  if (field === '\\N') return null;
  return field.replace(/\\(.)/g, (_, ch: string) => ({ n: '\n', r: '\r', t: '\t' })[ch] ?? ch);
}

/** A row's identity: its primary key's fields, or the whole row for a table without one. */
function rowKey(model: TableModel): (r: Row) => string {
  const cols = model.columns.filter((c) => !c.generated);
  const key = (model.primaryKey?.columns ?? []).map((n) => cols.findIndex((c) => c.name === n));
  return (r) => JSON.stringify(key.length > 0 ? key.map((i) => r[i]) : r);
}

/** Where the binlog's rows differ from the load's, in words (none when equal, rows matched by key). */
function differences(model: TableModel, load: Row[], binlog: Row[]): string[] {
  const cols = model.columns.filter((c) => !c.generated);
  const keyOf = rowKey(model);
  const name = (r: Row) => (model.primaryKey ? JSON.parse(keyOf(r)).join(',') : keyOf(r));
  const pending = [...binlog];
  const out: string[] = [];
  for (const row of load) {
    const i = pending.findIndex((b) => keyOf(b) === keyOf(row));
    if (i < 0) {
      out.push(`row ${name(row)}: in the load, not from the binlog`);
      continue;
    }
    const [b] = pending.splice(i, 1);
    cols.forEach((c, j) => {
      if (b![j] !== row[j]) out.push(`row ${name(row)}: ${c.name} is ${row[j]} in the load, ${b![j]} from the binlog`);
    });
  }
  for (const b of pending) out.push(`row ${name(b)}: from the binlog, not in the load`);
  return out;
}

/** A reader of one table's fields by id and column name. */
function columnsOf(tables: Array<{ label: string; model: TableModel }>, label: string, rows: Array<{ row: Row }>) {
  const cols = tables.find((t) => t.label === label)!.model.columns.filter((c) => !c.generated);
  return (id: number, column: string) => {
    const row = rows.find((m) => m.row[0] === String(id));
    if (!row) throw new Error(`${label}: no row ${id}`);
    return row.row[cols.findIndex((c) => c.name === column)];
  };
}

/** The binlog reader process: zongji from the position given, each row image encoded and reported. */
async function readBinlog(job: ChildJob): Promise<void> {
  const send = (m: FromChild) => process.send!(m);
  const { default: ZongJi } = await import('@vlasky/zongji');
  const z = new ZongJi({ host: '127.0.0.1', port: job.port, user: 'root', password: job.password, ...job.options });
  let changed: string[] = [];
  const encoders = job.tables.map(({ label, model }) => ({ label, key: qualifiedKey(model), encode: binlogRowEncoder(model, (c) => changed.push(c)) }));
  const report = (label: string, event: 'insert' | 'before' | 'after' | 'delete', encode: () => Array<Buffer | null>) => {
    changed = [];
    try {
      const row = encode().map((b) => (b === null ? null : b.toString('utf8')));
      send({ kind: 'image', label, event, row, changed });
    } catch (err) {
      send({ kind: 'error', message: `${label}: ${(err as Error).message}` });
    }
  };
  z.on('binlog', (e: AnyBinlogEvent) => {
    if (e.getEventName() === 'tablemap') return readExactly(z, e as TableMapEvent);
    if (!('rows' in e)) return;
    const entry: TableMapEntry = e.tableMap[e.tableId]!;
    const key = qualifiedKey({ schema: entry.parentSchema, name: entry.tableName });
    if (key === 'shop.binlog_sentinel') return send({ kind: 'sentinel' });
    for (const { label, encode } of encoders.filter((x) => x.key === key)) {
      for (const row of e.rows) {
        if ('before' in row && 'after' in row) {
          const r = row as { before: Record<string, unknown>; after: Record<string, unknown> };
          report(label, 'before', () => encode(r.before, entry));
          report(label, 'after', () => encode(r.after, entry));
        } else {
          report(label, e.getEventName() === 'deleterows' ? 'delete' : 'insert', () => encode(row as Record<string, unknown>, entry));
        }
      }
    }
  });
  z.on('error', (err: Error) => send({ kind: 'error', message: err.message }));
  z.on('ready', () => send({ kind: 'ready' }));
  z.start({ serverId: job.serverId, filename: job.filename, position: job.position, includeEvents: ['tablemap', 'writerows', 'updaterows', 'deleterows'] });
  // Ends with the test's process.
  process.once('disconnect', () => {
    z.stop();
    process.exit(0);
  });
}
