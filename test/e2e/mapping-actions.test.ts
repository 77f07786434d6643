import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection } from 'mysql2/promise';
import { startMariaSource, type MariaSource } from '../support/mariadb-source';
import { cliEnv, dbferry, startWorker, untilCaughtUp, type WorkerProcess } from '../support/cli';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';

jest.setTimeout(6 * 60_000);

/**
 * Every name-changing transformation action and define-primary-key, each on its own table or
 * column, in one full load from PostgreSQL: the target's schema (before/after per rule) and
 * each table's rows under the mapped names; validation equal. (test/e2e/mappings covers
 * rename, convert-lowercase, add-prefix, remove-column, change-data-type and add-column through
 * CDC from both engines.)
 */
const loc = (table: string, column?: string) => ({ 'schema-name': 'App', 'table-name': table, ...(column ? { 'column-name': column } : {}) });
const rule = (id: number, target: 'table' | 'column', action: string, locator: object, extra: object = {}) => ({
  'rule-type': 'transformation',
  'rule-id': String(id),
  'rule-name': `r${id}`,
  'rule-target': target,
  'object-locator': locator,
  'rule-action': action,
  ...extra,
});
const RULES = [
  { 'rule-type': 'selection', 'rule-id': '1', 'rule-name': 'app', 'object-locator': loc('%'), 'rule-action': 'include' },
  rule(2, 'table', 'convert-uppercase', loc('lowerme')),
  rule(3, 'table', 'remove-prefix', loc('old_items'), { value: 'old_' }),
  rule(4, 'table', 'replace-prefix', loc('tmp_logs'), { 'old-value': 'tmp_', value: 'log_' }),
  rule(5, 'table', 'add-suffix', loc('users'), { value: '_v2' }),
  rule(6, 'column', 'remove-suffix', loc('users', 'name_txt'), { value: '_txt' }),
  rule(7, 'column', 'replace-suffix', loc('users', 'email_old'), { 'old-value': '_old', value: '_new' }),
  rule(8, 'column', 'convert-uppercase', loc('users', 'nick')),
  rule(9, 'column', 'add-prefix', loc('users', 'zip'), { value: 'c_' }),
  rule(10, 'table', 'remove-suffix', loc('pairs_tbl'), { value: '_tbl' }),
  rule(11, 'table', 'define-primary-key', loc('pairs_tbl'), { 'primary-key-def': { name: 'pairs_pk', columns: ['a', 'b'] } }),
  rule(12, 'column', 'convert-lowercase', loc('lowerme', 'MiXed')),
];

describe('each transformation action, with data, in a full load from PostgreSQL', () => {
  const sourceDb = uniqueName('mapact_source');
  const targetDb = uniqueName('mapact_target');
  const name = uniqueName('mapact').replace(/_/g, '-');
  let env: NodeJS.ProcessEnv;
  let worker: WorkerProcess | undefined;

  beforeAll(async () => {
    const url = await createDatabase('source', sourceDb);
    await withClient(url, (c) =>
      c.query(`CREATE SCHEMA "App";
        CREATE TABLE "App".lowerme (id int PRIMARY KEY, "MiXed" text);
        INSERT INTO "App".lowerme VALUES (1, 'a'), (2, NULL);
        CREATE TABLE "App".old_items (id int PRIMARY KEY, v text);
        INSERT INTO "App".old_items VALUES (1, 'x');
        CREATE TABLE "App".tmp_logs (id int PRIMARY KEY, line text);
        INSERT INTO "App".tmp_logs VALUES (1, 'l1'), (2, 'l2');
        CREATE TABLE "App".users (id int PRIMARY KEY, name_txt text, email_old text, nick text, zip char(5));
        INSERT INTO "App".users VALUES (1, 'Ann', 'a@x', 'an', '12345'), (2, 'Bob', NULL, NULL, NULL);
        CREATE TABLE "App".pairs_tbl (a int NOT NULL, b text NOT NULL, n int);
        INSERT INTO "App".pairs_tbl VALUES (1, 'x', 1), (1, 'y', 2), (2, 'x', 3);`),
    );
    env = cliEnv(`q-${name}`, { SRC_URL: url, TGT_URL: serverUrl('target', targetDb) });
    worker = await startWorker(env);
  });

  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await dropDatabase('source', sourceDb);
    await dropDatabase('target', targetDb);
  });

  it('gives every table and column its mapped name and rows, and validation says equal', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbferry-plan-'));
    writeFileSync(join(dir, 'mappings.json'), JSON.stringify({ rules: RULES }));
    const plan = join(dir, 'plan.yaml');
    writeFileSync(plan, `name: ${name}\nmode: full-load\nsource: { engine: postgres, url: env:SRC_URL }\ntarget: { engine: postgres, url: env:TGT_URL }\ntables: { mappings: file:${join(dir, 'mappings.json')} }\n`);
    const r = await dbferry(['start', plan, '--wait', '--json'], env);
    expect({ code: r.code, out: r.code === 0 ? '' : r.stdout.slice(0, 3000) + r.stderr.slice(-2000) }).toEqual({ code: 0, out: '' });
    const report = JSON.parse(r.stdout);
    expect(report.validation.tables.map((t: { table: string; equal: boolean }) => `${t.table} ${t.equal}`).sort()).toEqual(
      ['App.LOWERME true', 'App.items true', 'App.log_logs true', 'App.pairs true', 'App.users_v2 true'].sort(),
    );
    const target = await withClient(serverUrl('target', targetDb), async (c) => {
      const tables = await c.query(`SELECT c.relname AS t, string_agg(a.attname, ' ' ORDER BY a.attnum) AS cols,
                                           (SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p') AS pk
                                      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                                     WHERE n.nspname = 'App' AND c.relkind = 'r' GROUP BY c.oid, c.relname ORDER BY 1`);
      const rows = async (sql: string) => (await c.query({ text: sql, rowMode: 'array' })).rows.map((x: unknown[]) => x.map((v) => (v === null ? 'NULL' : String(v))).join('|'));
      return {
        tables: tables.rows.map((x) => `${x.t}(${x.cols}) ${x.pk ?? 'no key'}`).sort(),
        lowerme: await rows('SELECT id, mixed FROM "App"."LOWERME" ORDER BY id'),
        items: await rows('SELECT id, v FROM "App".items'),
        logs: await rows('SELECT id, line FROM "App".log_logs ORDER BY id'),
        users: await rows('SELECT id, name, email_new, "NICK", c_zip FROM "App".users_v2 ORDER BY id'),
        pairs: await rows('SELECT a, b, n FROM "App".pairs ORDER BY a, b'),
      };
    });
    expect(target).toEqual({
      tables: [
        'LOWERME(id mixed) PRIMARY KEY (id)',
        'items(id v) PRIMARY KEY (id)',
        'log_logs(id line) PRIMARY KEY (id)',
        'pairs(a b n) PRIMARY KEY (a, b)',
        'users_v2(id name email_new NICK c_zip) PRIMARY KEY (id)',
      ].sort(),
      lowerme: ['1|a', '2|NULL'],
      items: ['1|x'],
      logs: ['1|l1', '2|l2'],
      users: ['1|Ann|a@x|an|12345', '2|Bob|NULL|NULL|NULL'],
      pairs: ['1|x|1', '1|y|2', '2|x|3'],
    });
  });
});

describe('define-primary-key on a MySQL table without a key, through CDC', () => {
  let source: MariaSource | undefined;
  let my: Connection;
  let worker: WorkerProcess | undefined;
  const name = uniqueName('mypk').replace(/_/g, '-');
  const targetDb = uniqueName('mypk_target');
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    source = await startMariaSource();
    my = source.my;
    await my.query(`CREATE DATABASE app; USE app;
      CREATE TABLE events (code varchar(10) NOT NULL, seq int NOT NULL, payload varchar(20));
      INSERT INTO events VALUES ('a', 1, 'x'), ('a', 2, 'y'), ('b', 1, 'z');`);
    env = cliEnv(`q-${name}`, { SRC_URL: source.maria.url('app'), TGT_URL: serverUrl('target', targetDb) });
    worker = await startWorker(env);
  });

  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await source?.stop();
    await dropDatabase('target', targetDb);
  });

  it('is keyed on the target and CDC finds rows by that key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbferry-plan-'));
    const rules = [
      { 'rule-type': 'selection', 'rule-id': '1', 'rule-name': 'app', 'object-locator': { 'schema-name': 'app', 'table-name': '%' }, 'rule-action': 'include' },
      { 'rule-type': 'transformation', 'rule-id': '2', 'rule-name': 'pk', 'rule-target': 'table', 'object-locator': { 'schema-name': 'app', 'table-name': 'events' }, 'rule-action': 'define-primary-key', 'primary-key-def': { name: 'events_pk', columns: ['code', 'seq'] } },
    ];
    writeFileSync(join(dir, 'mappings.json'), JSON.stringify({ rules }));
    const plan = join(dir, 'plan.yaml');
    writeFileSync(plan, `name: ${name}\nmode: full-load-and-cdc\nsource: { engine: mysql, url: env:SRC_URL }\ntarget: { engine: postgres, url: env:TGT_URL }\ntables: { mappings: file:${join(dir, 'mappings.json')} }\n`);
    // Without the rule the keyless table blocks CDC; with it, check passes.
    const check = await dbferry(['check', plan], env);
    expect({ code: check.code, out: check.code === 0 ? '' : check.stdout + check.stderr }).toEqual({ code: 0, out: '' });
    const started = await dbferry(['start', plan, '--wait', '--json'], env);
    expect({ code: started.code, out: started.code === 0 ? '' : started.stdout.slice(0, 3000) + started.stderr.slice(-2000) }).toEqual({ code: 0, out: '' });
    await my.query(`USE app; UPDATE events SET payload = 'y2' WHERE code = 'a' AND seq = 2; DELETE FROM events WHERE code = 'b'; INSERT INTO events VALUES ('c', 1, 'new'); UPDATE events SET seq = 9 WHERE code = 'a' AND seq = 1;`);
    await untilCaughtUp(name, env, worker);
    const cut = await dbferry(['cutover', name, '--wait', '--json'], env);
    expect({ code: cut.code, out: cut.code === 0 ? '' : cut.stdout.slice(0, 3000) + cut.stderr.slice(-2000) }).toEqual({ code: 0, out: '' });
    expect(JSON.parse(cut.stdout).validation.tables.map((t: { table: string; equal: boolean }) => [t.table, t.equal])).toEqual([['app.events', true]]);
    const target = await withClient(serverUrl('target', targetDb), async (c) => ({
      pk: (await c.query(`SELECT conname, pg_get_constraintdef(oid) AS d FROM pg_constraint WHERE conrelid = 'app.events'::regclass AND contype = 'p'`)).rows,
      rows: (await c.query(`SELECT code || '/' || seq || '/' || coalesce(payload, 'NULL') AS r FROM app.events ORDER BY 1`)).rows.map((r) => r.r),
    }));
    expect(target).toEqual({ pk: [{ conname: 'events_pk', d: 'PRIMARY KEY (code, seq)' }], rows: ['a/2/y2', 'a/9/x', 'c/1/new'] });
  });
});
