import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection } from 'mysql2/promise';
import { Client } from 'pg';
import { startMariaSource, type MariaSource } from '../support/mariadb-source';
import { cliEnv, dbferry, startWorker, untilCaughtUp, type WorkerProcess } from '../support/cli';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';

jest.setTimeout(8 * 60_000);

/**
 * One AWS DMS table-mapping document, as a team would have it for DMS, drives a migration from
 * MariaDB and one from PostgreSQL: selection with an exclude, a schema renamed, a table renamed
 * and one prefixed (`Order`: a reserved word), every column lowercased except one renamed, a
 * column removed, one retyped, one added from an expression. Full load, CDC of inserts,
 * updates (of the renamed, the removed and the expression's columns) and deletes, cutover:
 * the target has the mapped schema, its rows are the source's under the mapping (the test's
 * own reading) and dbferry's validation says equal.
 */
const RULES = [
  { 'rule-type': 'selection', 'rule-id': '1', 'rule-name': 'sales', 'object-locator': { 'schema-name': 'Sales', 'table-name': '%' }, 'rule-action': 'include' },
  { 'rule-type': 'selection', 'rule-id': '2', 'rule-name': 'no-tmp', 'object-locator': { 'schema-name': 'Sales', 'table-name': 'TMP_%' }, 'rule-action': 'exclude' },
  { 'rule-type': 'transformation', 'rule-id': '3', 'rule-name': 'cust-name', 'rule-target': 'column', 'object-locator': { 'schema-name': 'Sales', 'table-name': 'Customer', 'column-name': 'CustName' }, 'rule-action': 'rename', value: 'name' },
  { 'rule-type': 'transformation', 'rule-id': '4', 'rule-name': 'no-secret', 'rule-target': 'column', 'object-locator': { 'schema-name': 'Sales', 'table-name': 'Customer', 'column-name': 'Secret' }, 'rule-action': 'remove-column' },
  { 'rule-type': 'transformation', 'rule-id': '5', 'rule-name': 'score-big', 'rule-target': 'column', 'object-locator': { 'schema-name': 'Sales', 'table-name': 'Customer', 'column-name': 'Score' }, 'rule-action': 'change-data-type', 'data-type': { type: 'int8' } },
  {
    'rule-type': 'transformation',
    'rule-id': '6',
    'rule-name': 'email-key',
    'rule-target': 'column',
    'object-locator': { 'schema-name': 'Sales', 'table-name': 'Customer' },
    'rule-action': 'add-column',
    value: 'email_key',
    expression: "lower($Email) || '#' || length($Email)",
    'data-type': { type: 'string', length: 120 },
  },
  { 'rule-type': 'transformation', 'rule-id': '7', 'rule-name': 'customers', 'rule-target': 'table', 'object-locator': { 'schema-name': 'Sales', 'table-name': 'Customer' }, 'rule-action': 'rename', value: 'customers' },
  { 'rule-type': 'transformation', 'rule-id': '8', 'rule-name': 'prefix', 'rule-target': 'table', 'object-locator': { 'schema-name': 'Sales', 'table-name': 'Order' }, 'rule-action': 'add-prefix', value: 't_' },
  { 'rule-type': 'transformation', 'rule-id': '10', 'rule-name': 'schema', 'rule-target': 'schema', 'object-locator': { 'schema-name': 'Sales' }, 'rule-action': 'rename', value: 'shop' },
  { 'rule-type': 'transformation', 'rule-id': '12', 'rule-name': 'lower-columns', 'rule-target': 'column', 'object-locator': { 'schema-name': 'Sales', 'table-name': '%', 'column-name': '%' }, 'rule-action': 'convert-lowercase' },
];

/** Source statements in the dialect both engines read (identifiers quoted by `q`). */
function sourceSql(q: (s: string) => string, schema: string): { create: string[]; changes: string[] } {
  const c = `${q(schema)}.${q('Customer')}`;
  const o = `${q(schema)}.${q('Order')}`;
  const t = `${q(schema)}.${q('TMP_scratch')}`;
  return {
    create: [
      `CREATE TABLE ${c} (${q('CustId')} int NOT NULL PRIMARY KEY, ${q('CustName')} varchar(50), ${q('Email')} varchar(100), ${q('Secret')} varchar(20), ${q('Score')} int)`,
      `CREATE TABLE ${o} (${q('OrderId')} int NOT NULL PRIMARY KEY, ${q('CustId')} int NOT NULL, ${q('Amount')} decimal(10,2) NOT NULL)`,
      `CREATE TABLE ${t} (id int PRIMARY KEY)`,
      `INSERT INTO ${c} VALUES (1, 'Ann', 'Ann@Example.com', 's1', 10), (2, 'Bob', 'bob@example.com', 's2', 2147483647), (3, 'Cy', NULL, NULL, NULL)`,
      `INSERT INTO ${o} VALUES (1, 1, 10.50), (2, 1, 3.25), (3, 2, 99.99)`,
      `INSERT INTO ${t} VALUES (1)`,
    ],
    changes: [
      `INSERT INTO ${c} VALUES (4, 'Dee', 'DEE@x.org', 's4', -5)`,
      `UPDATE ${c} SET ${q('CustName')} = 'Ann B' WHERE ${q('CustId')} = 1`,
      `UPDATE ${c} SET ${q('Email')} = 'Bob@New.example' WHERE ${q('CustId')} = 2`,
      `UPDATE ${c} SET ${q('Secret')} = 'changed' WHERE ${q('CustId')} = 3`,
      `DELETE FROM ${c} WHERE ${q('CustId')} = 3`,
      `INSERT INTO ${o} VALUES (4, 4, 1.00)`,
      `UPDATE ${o} SET ${q('Amount')} = 11.00 WHERE ${q('OrderId')} = 1`,
      `DELETE FROM ${o} WHERE ${q('OrderId')} = 2`,
      `INSERT INTO ${t} VALUES (2)`,
    ],
  };
}

const EXPECTED_COLUMNS = {
  customers: ['custid integer', 'name character varying(50)', 'email character varying(100)', 'score bigint', 'email_key character varying(120)'],
  t_Order: ['orderid integer', 'custid integer', 'amount numeric(10,2)'],
};

function writeMapped(name: string, engine: 'mysql' | 'postgres'): string {
  const dir = mkdtempSync(join(tmpdir(), 'dbferry-plan-'));
  writeFileSync(join(dir, 'mappings.json'), JSON.stringify({ rules: RULES }));
  const file = join(dir, 'plan.yaml');
  writeFileSync(
    file,
    `name: ${name}
mode: full-load-and-cdc
source: { engine: ${engine}, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
tables:
  mappings: file:${join(dir, 'mappings.json')}
`,
  );
  return file;
}

/** The target as an application reads it: columns with types, rows as text. */
async function targetState(url: string) {
  return withClient(url, async (c) => {
    const cols = await c.query(`SELECT c.relname AS t, string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ';' ORDER BY a.attnum) AS cols
                                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                                 WHERE n.nspname = 'shop' AND c.relkind = 'r' GROUP BY 1 ORDER BY 1`);
    const customers = await c.query(`SELECT custid || '|' || coalesce(name, 'NULL') || '|' || coalesce(email, 'NULL') || '|' || coalesce(score::text, 'NULL') || '|' || coalesce(email_key, 'NULL') AS r FROM shop.customers ORDER BY custid`);
    const orders = await c.query(`SELECT orderid || '|' || custid || '|' || amount AS r FROM shop."t_Order" ORDER BY orderid`);
    const schemas = await c.query(`SELECT nspname FROM pg_namespace WHERE nspname IN ('Sales', 'shop') ORDER BY 1`);
    return {
      schemas: schemas.rows.map((r) => r.nspname),
      tables: Object.fromEntries(cols.rows.map((r) => [r.t, r.cols.split(';')])),
      customers: customers.rows.map((r) => r.r),
      orders: orders.rows.map((r) => r.r),
    };
  });
}

/** What the mapping makes of the source's rows, computed here from the source as it is now. */
function expectedFrom(customers: unknown[][], orders: unknown[][]) {
  const s = (v: unknown) => (v === null ? 'NULL' : String(v));
  return {
    customers: customers
      .map(([id, name, email, score]) => `${s(id)}|${s(name)}|${s(email)}|${s(score)}|${email === null ? 'NULL' : `${String(email).toLowerCase()}#${String(email).length}`}`)
      .sort((a, b) => Number(a.split('|')[0]) - Number(b.split('|')[0])),
    orders: orders.map(([id, cust, amount]) => `${s(id)}|${s(cust)}|${s(amount)}`).sort((a, b) => Number(a.split('|')[0]) - Number(b.split('|')[0])),
  };
}

async function runMigration(name: string, engine: 'mysql' | 'postgres', env: NodeJS.ProcessEnv, change: () => Promise<void>, tgt: string, readSource: () => Promise<{ customers: unknown[][]; orders: unknown[][] }>, worker: () => WorkerProcess | undefined) {
  const plan = writeMapped(name, engine);
  const check = await dbferry(['check', plan], env);
  expect({ code: check.code, out: check.code === 0 ? '' : check.stdout + check.stderr }).toEqual({ code: 0, out: '' });
  expect(check.stdout).toMatch(/CREATE TABLE "shop"\."t_Order"/);
  expect(check.stdout).toMatch(/rule 4/);

  const started = await dbferry(['start', plan, '--wait', '--json'], env);
  expect({ code: started.code, out: started.code === 0 ? '' : started.stdout.slice(0, 3000) + started.stderr.slice(-2000) }).toEqual({ code: 0, out: '' });
  const loaded = await targetState(tgt);
  expect(loaded.schemas).toEqual(['shop']);
  expect(loaded.tables).toEqual(EXPECTED_COLUMNS);
  await change();
  await untilCaughtUp(name, env, worker());
  const cut = await dbferry(['cutover', name, '--wait', '--json'], env);
  expect({ code: cut.code, out: cut.code === 0 ? '' : cut.stdout.slice(0, 3000) + cut.stderr.slice(-2000) }).toEqual({ code: 0, out: '' });
  const report = JSON.parse(cut.stdout);
  expect(report.validation.tables.map((t: { table: string; equal: boolean }) => [t.table, t.equal])).toEqual([
    ['shop.customers', true],
    ['shop.t_Order', true],
  ]);
  expect(report.validation.tables[0].computed).toEqual([{ column: 'email_key', wrong: '0' }]);
  const after = await targetState(tgt);
  const src = await readSource();
  expect({ customers: after.customers, orders: after.orders }).toEqual(expectedFrom(src.customers, src.orders));
  // The changes reached it: the renamed column's, the expression's input, a delete.
  expect(after.customers).toEqual(['1|Ann B|Ann@Example.com|10|ann@example.com#15', '2|Bob|Bob@New.example|2147483647|bob@new.example#15', '4|Dee|DEE@x.org|-5|dee@x.org#9']);
}

describe('an AWS DMS table mapping with transformation rules, from MariaDB', () => {
  let source: MariaSource | undefined;
  let my: Connection;
  let worker: WorkerProcess | undefined;
  const name = uniqueName('mymap').replace(/_/g, '-');
  const targetDb = uniqueName('mymap_target');
  let env: NodeJS.ProcessEnv;
  const q = (s: string) => `\`${s}\``;

  beforeAll(async () => {
    source = await startMariaSource();
    my = source.my;
    await my.query('CREATE DATABASE Sales');
    for (const sql of sourceSql(q, 'Sales').create) await my.query(sql);
    env = cliEnv(`q-${name}`, { SRC_URL: source.maria.url('Sales'), TGT_URL: serverUrl('target', targetDb) });
    worker = await startWorker(env);
  });

  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await source?.stop();
    await dropDatabase('target', targetDb);
  });

  it('migrates the mapped schema and rows through full load, CDC and cutover', async () => {
    const read = async (sql: string) => ((await my.query({ sql, rowsAsArray: true } as never))[0] as unknown[][]);
    await runMigration(
      name,
      'mysql',
      env,
      async () => {
        for (const sql of sourceSql(q, 'Sales').changes) await my.query(sql);
      },
      serverUrl('target', targetDb),
      async () => ({
        customers: await read('SELECT CustId, CustName, Email, Score FROM Sales.Customer'),
        orders: await read('SELECT OrderId, CustId, Amount FROM Sales.`Order`'),
      }),
      () => worker,
    );
  });
});

describe('an AWS DMS table mapping with transformation rules, from PostgreSQL', () => {
  const sourceDb = uniqueName('pgmap_source');
  const targetDb = uniqueName('pgmap_target');
  const name = uniqueName('pgmap').replace(/_/g, '-');
  let env: NodeJS.ProcessEnv;
  let worker: WorkerProcess | undefined;
  let src: Client;
  const q = (s: string) => `"${s}"`;

  beforeAll(async () => {
    const url = await createDatabase('source', sourceDb);
    src = new Client({ connectionString: url });
    src.on('error', () => undefined);
    await src.connect();
    await src.query('CREATE SCHEMA "Sales"');
    for (const sql of sourceSql(q, 'Sales').create) await src.query(sql);
    env = cliEnv(`q-${name}`, { SRC_URL: url, TGT_URL: serverUrl('target', targetDb) });
    worker = await startWorker(env);
  });

  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await src?.end().catch(() => undefined);
    await dropDatabase('source', sourceDb);
    await dropDatabase('target', targetDb);
  });

  it('migrates the mapped schema and rows through full load, CDC and cutover', async () => {
    const read = async (sql: string) => (await src.query({ text: sql, rowMode: 'array' })).rows as unknown[][];
    await runMigration(
      name,
      'postgres',
      env,
      async () => {
        for (const sql of sourceSql(q, 'Sales').changes) await src.query(sql);
      },
      serverUrl('target', targetDb),
      async () => ({
        customers: await read('SELECT "CustId", "CustName", "Email", "Score" FROM "Sales"."Customer"'),
        orders: await read('SELECT "OrderId", "CustId", "Amount" FROM "Sales"."Order"'),
      }),
      () => worker,
    );
  });
});
