import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dumpRestorePreDataStatements, freeStandingSequences } from '../../activities/target/ddl';
import {
  conninfoDbname,
  dumpTablePattern,
  errorLines,
  libpqEnv,
  parseToolVersion,
  pgToolsDir,
  runTool,
  serverMajor,
  tableInOutput,
} from '../../activities/postgres/pg-tools';
import type { PgEndpoint } from '../../activities/pg/connection';
import type { SchemaModel, SequenceModel } from '../../plan/schema-model';

const seq = (name: string, extra: Partial<SequenceModel> = {}): SequenceModel => ({
  schema: 'My Schema',
  name,
  dataType: 'bigint',
  start: '1',
  increment: '1',
  min: '1',
  max: '9223372036854775807',
  cache: '1',
  cycle: false,
  lastValue: '5',
  isCalled: true,
  identity: false,
  ...extra,
});

describe('pg_dump -t patterns and --dbname', () => {
  it.each([
    [{ schema: 'public', name: 'orders' }, '"public"."orders"'],
    [{ schema: 'My Schema', name: 'Dump "Me" Table' }, '"My Schema"."Dump ""Me"" Table"'],
    [{ schema: 'a.b', name: 'c*d?e' }, '"a.b"."c*d?e"'],
    [{ schema: 'Ünï', name: 'x$[y]' }, '"Ünï"."x$[y]"'],
  ])('%j → %s (quoted: no wildcard, no lowercasing, dots literal)', (t, pattern) => {
    expect(dumpTablePattern(t)).toBe(pattern);
  });

  it('--dbname is a conninfo holding only the name, escaped', () => {
    expect(conninfoDbname('shop')).toBe("dbname='shop'");
    expect(conninfoDbname("it's a=b \\ c")).toBe("dbname='it\\'s a=b \\\\ c'");
  });
});

describe('finding pg_dump', () => {
  it('parses versions', () => {
    expect(parseToolVersion('pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n')).toEqual({ major: 15, version: '15.20' });
    expect(parseToolVersion('pg_restore (PostgreSQL) 17beta1')).toEqual({ major: 17, version: '17' });
    expect(parseToolVersion('pg_dump (PostgreSQL) 9.6.24')).toEqual({ major: 9, version: '9.6.24' });
    expect(parseToolVersion('something else')).toBeUndefined();
    expect(serverMajor(150020)).toBe(15);
    expect(serverMajor(90624)).toBe(9);
  });

  it('takes DBFERRY_PG_BIN, else the newest /usr/lib/postgresql/N/bin with both programs', () => {
    const root = mkdtempSync(join(tmpdir(), 'dbferry-pgroot-'));
    for (const [v, both] of [['9.6', true], ['15', true], ['16', false], ['13', true]] as const) {
      mkdirSync(join(root, v, 'bin'), { recursive: true });
      writeFileSync(join(root, v, 'bin', 'pg_dump'), '');
      if (both) writeFileSync(join(root, v, 'bin', 'pg_restore'), '');
    }
    expect(pgToolsDir({}, root)).toBe(join(root, '15', 'bin'));
    expect(pgToolsDir({ DBFERRY_PG_BIN: '/opt/pg/bin' }, root)).toBe('/opt/pg/bin');
    expect(pgToolsDir({}, join(root, 'missing'))).toBeUndefined();
  });
});

describe('libpqEnv: the connection reaches pg_dump by environment', () => {
  const ep = (url: string): PgEndpoint => ({ side: 'source', url, description: 'source postgres/h:5432/shop', database: 'shop', secrets: ['s3cr:t'] });

  it('password in PGPASSWORD, nothing inherited from the worker but PATH/HOME/TMPDIR', async () => {
    process.env.PGSERVICE = 'inherited';
    process.env.SOME_SECRET_URL = 'postgres://u:x@h/db';
    try {
      const env = await libpqEnv(ep('postgres://app:s3cr%3At@db.example.com:6432/shop?sslmode=require&application_name=x'), undefined, {
        appName: 'dbferry dump',
        workDir: tmpdir(),
        toolMajor: 15,
      });
      expect(env).toMatchObject({
        PGHOST: 'db.example.com',
        PGPORT: '6432',
        PGUSER: 'app',
        PGPASSWORD: 's3cr:t',
        PGDATABASE: 'shop',
        PGSSLMODE: 'require',
        PGAPPNAME: 'dbferry dump',
        LC_ALL: 'C',
      });
      expect(env.PGSERVICE).toBeUndefined();
      expect(env.SOME_SECRET_URL).toBeUndefined();
    } finally {
      delete process.env.PGSERVICE;
      delete process.env.SOME_SECRET_URL;
    }
  });

  it("node-postgres's sslmode=no-verify and ssl=true become libpq's require", async () => {
    const opts = { appName: 'a', workDir: tmpdir(), toolMajor: 15 };
    expect((await libpqEnv(ep('postgres://h/shop?sslmode=no-verify'), undefined, opts)).PGSSLMODE).toBe('require');
    expect((await libpqEnv(ep('postgres://h/shop?ssl=true'), undefined, opts)).PGSSLMODE).toBe('require');
    expect((await libpqEnv(ep('postgres://h/shop?sslmode=verify-full'), { mode: 'disable' }, opts)).PGSSLMODE).toBe('disable');
  });

  it('a socket folder in the host part; the plan tls mode and an inline CA as a 0600 file', async () => {
    const work = mkdtempSync(join(tmpdir(), 'dbferry-env-'));
    const e = { ...ep('postgres://app@%2Fvar%2Frun%2Fpostgresql/shop'), ssl: { ca: '-----BEGIN CERTIFICATE-----\nx\n' } };
    const env = await libpqEnv(e, { mode: 'verify-full', ca: 'file:/ca.pem' }, { appName: 'a', workDir: work, toolMajor: 15 });
    expect(env.PGHOST).toBe('/var/run/postgresql');
    expect(env.PGSSLMODE).toBe('verify-full');
    expect(env.PGSSLROOTCERT).toBe(join(work, 'source-ca.pem'));
    expect(env.PGPASSWORD).toBeUndefined();
    const { statSync, readFileSync } = await import('node:fs');
    expect(statSync(env.PGSSLROOTCERT!).mode & 0o777).toBe(0o600);
    expect(readFileSync(env.PGSSLROOTCERT!, 'utf8')).toContain('BEGIN CERTIFICATE');
  });
});

describe('reading pg_dump / pg_restore output', () => {
  const parallelFailure = [
    'pg_restore: launching item 3768 TABLE DATA ab',
    'pg_restore: processing data for table "Dump Schema.ab"',
    'pg_restore: processing data for table "Dump Schema.Dump "Me" Table"',
    'finished item 3667 FK CONSTRAINT ünïcødé_täble fk→select',
    'pg_restore: while PROCESSING TOC:',
    'pg_restore: from TOC entry 3824; 0 17293 TABLE DATA Dump "Me" Table postgres',
    'pg_restore: error: COPY failed for table "Dump "Me" Table": ERROR:  new row for relation "Dump "Me" Table" violates check constraint "planted"',
    'DETAIL:  Failing row contains (2, 2).',
    'CONTEXT:  COPY Dump "Me" Table, line 2: "2\t2"',
    'launching item 3645 CONSTRAINT select select_where_key',
    'pg_restore: error: a worker process died unexpectedly',
  ];
  const tables = [
    { schema: 'Dump Schema', name: 'ab' },
    { schema: 'Dump Schema', name: 'Dump "Me" Table' },
    { schema: 'Ünï Schema', name: 'ünïcødé_täble' },
  ];

  it('errorLines keeps the failure from its TOC entry on, without progress lines (even unprefixed ones)', () => {
    expect(errorLines(parallelFailure)).toEqual([
      'pg_restore: from TOC entry 3824; 0 17293 TABLE DATA Dump "Me" Table postgres',
      parallelFailure[6],
      'DETAIL:  Failing row contains (2, 2).',
      'CONTEXT:  COPY Dump "Me" Table, line 2: "2\t2"',
      'pg_restore: error: a worker process died unexpectedly',
    ]);
  });

  it('tableInOutput names the table of the failure', () => {
    expect(tableInOutput(errorLines(parallelFailure), tables)).toBe('Dump Schema.Dump "Me" Table');
    const dump = ['pg_dump: error: query failed: ERROR:  permission denied for table orders_archive', 'pg_dump: detail: Query was: LOCK TABLE public.orders_archive IN ACCESS SHARE MODE'];
    expect(tableInOutput(dump, [{ schema: 'public', name: 'orders' }, { schema: 'public', name: 'orders_archive' }])).toBe('public.orders_archive');
    const quoted = ['pg_dump: detail: Query was: LOCK TABLE "My Schema"."Big ""T""" IN ACCESS SHARE MODE'];
    expect(tableInOutput(quoted, [{ schema: 'My Schema', name: 'Big "T"' }])).toBe('My Schema.Big "T"');
    expect(tableInOutput(['pg_dump: error: connection to server failed'], tables)).toBeUndefined();
  });
});

describe('dump-restore pre-data', () => {
  const model: SchemaModel = {
    schemas: ['public', 'My Schema'],
    extensions: [{ name: 'citext', schema: 'ext' }],
    types: [{ schema: 'My Schema', name: 'mood', kind: 'enum', definition: `CREATE TYPE "My Schema"."mood" AS ENUM ('a')` }],
    sequences: [
      seq('free'),
      seq('t_id_seq', { ownedBy: { table: { schema: 'My Schema', name: 't' }, column: 'id' } }),
      seq('u_id_seq', { identity: true }),
    ],
    tables: [],
  };

  it('makes schemas, extensions, types and the sequences pg_dump -t leaves out', () => {
    expect(freeStandingSequences(model).map((s) => s.name)).toEqual(['free']);
    expect(dumpRestorePreDataStatements(model, false)).toEqual([
      'CREATE SCHEMA IF NOT EXISTS "My Schema"',
      'CREATE SCHEMA IF NOT EXISTS "ext"',
      'CREATE EXTENSION IF NOT EXISTS "citext" WITH SCHEMA "ext"',
      `CREATE TYPE "My Schema"."mood" AS ENUM ('a')`,
      'CREATE SEQUENCE "My Schema"."free" AS bigint INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1 NO CYCLE',
    ]);
  });

  it('a retry accepts the sequences it made before', () => {
    expect(dumpRestorePreDataStatements(model, true).at(-1)).toMatch(/^CREATE SEQUENCE IF NOT EXISTS "My Schema"\."free" /);
  });
});

describe('runTool', () => {
  it('streams stderr lines, keeps only the last ones, and reports the exit code', async () => {
    const seen: string[] = [];
    const r = await runTool('sh', ['-c', 'for i in $(seq 1 200); do echo "line $i" >&2; done; exit 3'], { PATH: process.env.PATH }, { onLine: (l) => seen.push(l), keepLines: 5 });
    expect(r.code).toBe(3);
    expect(seen).toHaveLength(200);
    expect(r.lastLines).toEqual(['line 196', 'line 197', 'line 198', 'line 199', 'line 200']);
  });

  it('aborting kills the program and rejects with the reason', async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    const run = runTool('sleep', ['30'], { PATH: process.env.PATH }, { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('cancelled by the workflow')), 200);
    await expect(run).rejects.toThrow('cancelled by the workflow');
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('a missing program rejects', async () => {
    await expect(runTool('/nonexistent/pg_dump', [], {})).rejects.toThrow(/ENOENT/);
  });
});
