import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection, type Connection } from 'mysql2/promise';
import { startMariaDb, type MariaDbServer } from '../../local/mariadb-server';
import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { mysqlRowsAsApplicationReads, pgRowsAsApplicationReads } from '../support/mysql-compare';
import { dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';

jest.setTimeout(10 * 60_000);

const BLOB_BYTES = 16 * 1024 * 1024;

/**
 * MySQL/MariaDB → PostgreSQL through the CLI, on a real MariaDB whose time zone is +05:30: every
 * converted type with its edge values (test/fixtures/mysql-edge.sql), composite keys, cascading
 * foreign keys, a table without a primary key, hostile names, a 16 MB blob and spatial columns
 * (PostGIS geometry on this target, which has PostGIS available). The test compares
 * every table with its own fingerprint (each value read by an application on each side and
 * normalized by the test's own rules), checks single edge values on the target, dbferry's
 * validation, the identities' next values and the findings of `check`.
 */
describe('MySQL (MariaDB) → PostgreSQL full load', () => {
  let maria: MariaDbServer;
  let my: Connection;
  const targetDb = uniqueName('mysql_target');
  const name = uniqueName('my').replace(/_/g, '-');
  const queue = `q-${name}`;
  let worker: WorkerProcess | undefined;
  let env: NodeJS.ProcessEnv;
  const tgt = () => serverUrl('target', targetDb);

  beforeAll(async () => {
    maria = await startMariaDb({ baseDir: join(__dirname, '..', '..', '.tmp', 'test-servers'), timeZone: '+05:30' });
    // JSON as the text stored (MariaDB 10.5+ marks it, and mysql2 would parse it into numbers).
    my = await createConnection({
      uri: maria.url(),
      multipleStatements: true,
      jsonStrings: true,
      dateStrings: true,
      supportBigNumbers: true,
      bigNumberStrings: true,
      decimalNumbers: false,
    });
    await my.query("SET sql_mode = ''; CREATE DATABASE shop CHARACTER SET utf8mb4; USE shop;");
    await my.query(readFileSync(join(__dirname, '..', 'fixtures', 'mysql-edge.sql'), 'utf8'));
    await my.query(`
      INSERT INTO customers SELECT CASE WHEN seq % 2 = 0 THEN 'EU' ELSE 'US' END, seq, CONCAT('customer ', seq) FROM seq_1_to_500;
      INSERT INTO orders (region, customer_no, placed_at, status, total)
        SELECT CASE WHEN seq % 500 % 2 = 0 THEN 'EU' ELSE 'US' END, seq % 500, '2024-01-01' + INTERVAL seq MINUTE, ELT(1 + seq % 3, 'new', 'paid', 'shipped'), seq / 7
          FROM seq_1_to_3000 WHERE seq % 500 > 0;
      INSERT INTO \`order items\` SELECT o.id, s.seq, CONCAT('sku-', s.seq), o.id % 5 + 1 FROM orders o JOIN seq_1_to_3 s;
      INSERT INTO shipments SELECT id, IF(id % 2, 'ups', NULL) FROM orders WHERE id % 3 = 0;
      INSERT INTO \`log\` SELECT '2024-01-01 00:00:00' + INTERVAL seq SECOND, IF(seq % 10 = 0, NULL, CONCAT('event ', seq)) FROM seq_1_to_2000;
      INSERT INTO \`log\` SELECT at, msg FROM \`log\` LIMIT 5;
      INSERT INTO articles VALUES (1, 'a title', 'a body');
      INSERT INTO \`we\`\`ird\` VALUES (1, REPEAT(UNHEX('00FF10'), ${BLOB_BYTES / 3 + 1}), REPEAT('ä€', 1000000)), (2, NULL, NULL), (3, '', '');
      DELETE FROM orders WHERE id = 1500;`);
    env = cliEnv(queue, { SRC_URL: maria.url('shop'), TGT_URL: tgt() });
    worker = await startWorker(env);
  });

  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await my?.end();
    await maria?.stop();
    await dropDatabase('target', targetDb);
  });

  const plan = () =>
    writePlan(`
name: ${name}
mode: full-load
source: { engine: mysql, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
load: { parallel: 3 }
`);

  it('check names what does not convert and prints the converted schema', async () => {
    const r = await dbferry(['check', plan()], env);
    expect(r.stdout).toMatch(/^source: source mysql\/127\.0\.0\.1:\d+\/shop \(10\.\d+\.\d+-MariaDB[^)]*\)$/m);
    expect(r.stdout).toMatch(/^target: (target )?postgres\/.* \(PostgreSQL \d+/m);
    expect(r.stdout + r.stderr).toMatch(/FULLTEXT index ft/);
    expect(r.stdout + r.stderr).toMatch(/prefix index title_prefix/);
    expect(r.stdout + r.stderr).toMatch(/view shop\.paid_orders is not converted/);
    expect(r.stdout + r.stderr).toMatch(/lets the server store zero and invalid dates; PostgreSQL has none, so the load writes NULL for them/);
    expect(r.stdout + r.stderr).toMatch(/CREATE TABLE "shop"\."edge values"/);
    expect(r.stdout + r.stderr).toMatch(/"biu" numeric\(20,0\)/);
    // The target has PostGIS available (not yet in the database, which create-database makes).
    expect(r.stdout + r.stderr).toMatch(/INFO: .*create-tables runs CREATE EXTENSION IF NOT EXISTS postgis in database mysql_target_\w+ \(PostGIS [\d.]+ is available there\), and shop\.places\.pt \(point\), shop\.places\.route \(linestring\)/);
    expect(r.code).toBe(0);
  });

  it('loads every table equal by the test\'s fingerprint, with the edge values exact', async () => {
    const started = await dbferry(['start', plan(), '--wait', '--json'], env);
    expect({ code: started.code, out: started.code === 0 ? '' : started.stdout.slice(0, 3000) + started.stderr.slice(-2000) }).toEqual({ code: 0, out: '' });
    const report = JSON.parse(started.stdout);
    expect(report.status.phase).toBe('completed');
    const validation = report.validation.tables as Array<{ table: string; equal: boolean; checksum: string }>;
    expect(validation.map((t) => t.table).sort()).toEqual(
      ['shop.articles', 'shop.customers', 'shop.edge values', 'shop.log', 'shop.order items', 'shop.orders', 'shop.places', 'shop.shipments', 'shop.we`ird'].sort(),
    );
    expect(validation.filter((t) => !t.equal || t.checksum !== 'equal')).toEqual([]);
    // Zero and invalid dates become NULL, and the report says how many, where.
    const edgeStats = report.status.tables.find((t: { name: string }) => t.name === 'shop.edge values');
    expect(edgeStats.converted).toBe(
      '2 zero or invalid dates in dt written as NULL; 2 zero or invalid dates in dtm written as NULL; 1 zero or invalid date in ts written as NULL',
    );
    const shown = await dbferry(['status', name], env);
    expect(shown.stdout).toContain('shop.edge values: 2 zero or invalid dates in dt written as NULL');

    for (const table of ['edge values', 'customers', 'orders', 'order items', 'shipments', 'log', 'we`ird', 'articles']) {
      const source = await mysqlRowsAsApplicationReads(my, 'shop', table);
      const target = await pgRowsAsApplicationReads(tgt(), 'shop', table);
      expect({ table, rows: target.length }).toEqual({ table, rows: source.length });
      expect({ table, same: target.join('\n') === source.join('\n') }).toEqual({ table, same: true });
    }

    await withClient(tgt(), async (c) => {
      await c.query("SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres'");
      const edge = (
        await c.query(
          `SELECT id, flag, ti, tiu, siu, iu, bi, biu, d65::text AS d65, c, vc, txt, lat, vb, e, st, j, yr, "naïve Ü",
                  dt::text AS dt, dtm::text AS dtm, ts::text AS ts, tm::text AS tm, b1::text AS b1, b64::text AS b64, "select", "Mixed Case"
             FROM shop."edge values" ORDER BY id`,
        )
      ).rows;
      expect(edge[0]).toMatchObject({
        flag: true, tiu: 255, siu: 65535, iu: '4294967295', bi: '9223372036854775807', biu: '18446744073709551615',
        d65: '12345678901234567890123456789012345.123456789012345678901234567890',
        c: 'char      ', vc: 'trailing space ', lat: 'caf€ ÿ', e: 'b,c', st: 'x,z', yr: 2155, 'naïve Ü': 'emoji 🙂 and 漢字',
        dt: '2024-02-29', dtm: '2024-02-29 23:59:59.999999', ts: '2024-02-29 18:29:59.999999+00', tm: '-838:59:59',
      });
      expect(edge[0].b64).toBe('1'.repeat(64));
      expect(edge[0].j).toEqual(expect.objectContaining({ s: 'é"q', n: null }));
      const big = await c.query(`SELECT j->'big' AS big, j->'pi' AS pi FROM shop."edge values" WHERE id = 1`);
      expect(big.rows[0]).toEqual({ big: expect.anything(), pi: expect.anything() });
      const bigText = await c.query(`SELECT (j->'big')::text AS big FROM shop."edge values" WHERE id = 1`);
      expect(bigText.rows[0].big).toBe('12345678901234567890123');
      // Zero and invalid dates are NULL (counted), a negative and a 838-hour time survive.
      expect(edge[1]).toMatchObject({ dt: null, dtm: null, ts: null, tm: '838:59:59.999999', ti: -128, bi: '-9223372036854775808', b1: '0', vb: Buffer.alloc(0) });
      expect(edge[3]).toMatchObject({ dt: null, dtm: null, ts: '1970-01-01 00:00:01.000001+00', tm: '-00:00:00.5', vc: 'NULL', txt: '\\N' });
      expect(Object.values(edge[2]).filter((v) => v !== null)).toEqual(['3', 'sel', 7]);
      const blob = await c.query(`SELECT length(payload) AS n, md5(payload) AS m, length(note) AS chars FROM shop."we\`ird" WHERE id = 1`);
      const [[srcBlob]] = (await my.query('SELECT LENGTH(payload) AS n, MD5(payload) AS m, CHAR_LENGTH(note) AS chars FROM shop.`we``ird` WHERE id = 1')) as unknown as [Array<{ n: number; m: string; chars: number }>];
      expect(blob.rows[0]).toEqual({ n: Number(srcBlob!.n), m: srcBlob!.m, chars: Number(srcBlob!.chars) });
      expect(Number(blob.rows[0].n)).toBeGreaterThanOrEqual(BLOB_BYTES);

      // Spatial columns are PostGIS geometry of their kind (no SRID in the type: MariaDB's columns
      // hold any), each value the same geometry with the same SRID as on the source.
      const spatial = ['pt', 'route', 'area', 'spots', 'roads', 'regions', 'things', 'shape'];
      const types = await c.query(`SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'shop.places'::regclass AND attnum > 1 ORDER BY attnum`);
      expect(types.rows.map((r) => r.type)).toEqual([
        'geometry(Point)', 'geometry(LineString)', 'geometry(Polygon)', 'geometry(MultiPoint)', 'geometry(MultiLineString)', 'geometry(MultiPolygon)', 'geometry(GeometryCollection)', 'geometry',
      ]);
      const [srcGeo] = (await my.query(
        `SELECT id, ${spatial.map((g) => `CAST(ST_SRID(${g}) AS CHAR) AS ${g}_srid, LOWER(HEX(ST_AsBinary(${g}))) AS ${g}_wkb`).join(', ')} FROM shop.places ORDER BY id`,
      )) as unknown as [Array<Record<string, string | number | null>>];
      const tgtGeo = await c.query(
        `SELECT id, ${spatial.map((g) => `ST_SRID(${g})::text AS ${g}_srid, encode(ST_AsBinary(${g}, 'NDR'), 'hex') AS ${g}_wkb`).join(', ')} FROM shop.places ORDER BY id`,
      );
      expect(tgtGeo.rows).toEqual(srcGeo.map((r) => ({ ...r, id: Number(r.id) })));
      const shapes = await c.query(`SELECT id, ST_AsText(area) AS area, ST_AsText(things) AS things, ST_SRID(pt) AS srid, ST_Area(area) AS size, ST_AsText(shape) AS shape FROM shop.places ORDER BY id`);
      expect(shapes.rows.slice(0, 2)).toEqual([
        { id: 1, area: 'POLYGON((0 0,10 0,10 10,0 10,0 0),(2 2,4 2,4 4,2 4,2 2))', things: 'GEOMETRYCOLLECTION(POINT(1 1),LINESTRING(0 0,1 1),POLYGON((0 0,1 0,1 1,0 0)))', srid: 4326, size: 96, shape: 'POINT(1 2)' },
        { id: 2, area: 'POLYGON((0 0,3 0,3 3,0 0))', things: 'GEOMETRYCOLLECTION EMPTY', srid: 0, size: 4.5, shape: 'POLYGON((0 0,10 0,10 10,0 10,0 0),(2 2,4 2,4 4,2 4,2 2))' },
      ]);

      // Identities hand out the value the source's AUTO_INCREMENT would.
      const [[ai]] = (await my.query("SELECT AUTO_INCREMENT AS next FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop' AND TABLE_NAME = 'orders'")) as unknown as [Array<{ next: number }>];
      const next = await c.query(`INSERT INTO shop.orders (region, customer_no, total) VALUES ('EU', 2, 1) RETURNING id`);
      expect(next.rows[0].id).toBe(String(ai!.next));
      const edgeNext = await c.query(`INSERT INTO shop."edge values" DEFAULT VALUES RETURNING id, "select", "Mixed Case"`);
      expect(edgeNext.rows[0]).toEqual({ id: '5', select: 'sel', 'Mixed Case': 7 });
      // The ranges of the source stay enforced, and ON UPDATE CURRENT_TIMESTAMP is a trigger.
      await expect(c.query(`UPDATE shop."edge values" SET tiu = 256 WHERE id = 1`)).rejects.toThrow(/check constraint/);
      await expect(c.query(`INSERT INTO shop.orders (region, customer_no, status) VALUES ('EU', 2, 'lost')`)).rejects.toThrow(/check constraint/);
      await expect(c.query(`INSERT INTO shop.orders (region, customer_no, total) VALUES ('EU', 2, -1)`)).rejects.toThrow(/total_positive/);
      const before = await c.query(`SELECT updated_at FROM shop.orders WHERE id = 1000`);
      const after = await c.query(`UPDATE shop.orders SET total = total + 1 WHERE id = 1000 RETURNING updated_at`);
      expect(new Date(after.rows[0].updated_at).getTime()).toBeGreaterThan(new Date(before.rows[0].updated_at).getTime());
      // Cascades act on the target as on the source.
      await c.query(`DELETE FROM shop.customers WHERE region = 'EU' AND no = 2`);
      expect((await c.query(`SELECT count(*)::int AS n FROM shop.orders WHERE region = 'EU' AND customer_no = 2`)).rows[0].n).toBe(0);
    });
  });

  it('completes after the worker is killed in the middle of a table: nothing missing, nothing twice', async () => {
    await my.query(`CREATE DATABASE big CHARACTER SET utf8mb4;
      CREATE TABLE big.events (id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, at datetime(6) NOT NULL, kind varchar(20) NOT NULL, payload text);
      INSERT INTO big.events (at, kind, payload) SELECT '2024-01-01' + INTERVAL seq SECOND, ELT(1 + seq % 3, 'a', 'b', 'c'), REPEAT(MD5(seq), 4) FROM seq_1_to_200000;
      CREATE TABLE big.small (k int PRIMARY KEY, v varchar(10));
      INSERT INTO big.small SELECT seq, 'v' FROM seq_1_to_100;`);
    const killName = `${name}-kill`;
    const killDb = uniqueName('mysql_kill');
    const killEnv = cliEnv(queue, { SRC_URL: maria.url('big'), TGT_URL: serverUrl('target', killDb) });
    await worker!.stop('SIGKILL');
    worker = await startWorker(killEnv);
    try {
      const planFile = writePlan(`
name: ${killName}
mode: full-load
source: { engine: mysql, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
load: { parallel: 1 }
`);
      const run = dbferry(['start', planFile, '--wait', '--json'], killEnv);
      // The worker dies while it copies big.events (a COPY into it runs on the target).
      const copying = async () =>
        withClient(serverUrl('target'), async (c) =>
          ((await c.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'COPY "big"."events"%'`, [killDb])).rows[0] as { n: number }).n > 0,
        ).catch(() => false);
      const deadline = Date.now() + 120_000;
      while (!(await copying())) {
        if (Date.now() > deadline) throw new Error(`the load of big.events never started; the worker said:\n${worker!.output().slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const killedPid = worker!.child.pid;
      await worker!.stop('SIGKILL');
      worker = await startWorker(killEnv);
      const done = await run;
      expect({ code: done.code, out: done.code === 0 ? '' : done.stdout.slice(0, 2000) + done.stderr.slice(-2000) }).toEqual({ code: 0, out: '' });
      const report = JSON.parse(done.stdout);
      expect(report.validation.tables.every((t: { equal: boolean }) => t.equal)).toBe(true);
      for (const table of ['events', 'small']) {
        const source = await mysqlRowsAsApplicationReads(my, 'big', table);
        const target = await pgRowsAsApplicationReads(serverUrl('target', killDb), 'big', table);
        expect({ table, rows: target.length, same: target.join('\n') === source.join('\n') }).toEqual({ table, rows: source.length, same: true });
      }
      // big.events was loaded by the worker that took over, once (one ledger row), after the kill.
      const ledger = await withClient(serverUrl('target', killDb), (c) => c.query(`SELECT worker FROM _dbferry.table_loads WHERE table_key = 'big.events'`));
      expect(ledger.rows).toHaveLength(1);
      expect(ledger.rows[0].worker).not.toMatch(new RegExp(`^${killedPid}@`));
    } finally {
      await dropDatabase('target', killDb);
    }
  });
});
