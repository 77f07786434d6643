import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import type { Plan } from '../../plan/plan-schema';
import type { QualifiedName, SchemaObjects, SqlObject } from '../../plan/schema-model';
import { quoteIdent } from '../../plan/sql-names';
import type { Client } from 'pg';
import { withConnection, type PgEndpoint } from '../pg/connection';
import { checkToolVersion, conninfoDbname, errorLines, findPgTools, libpqEnv, runTool, serverMajor } from './pg-tools';

/**
 * Every schema object of the migrated schemas that is not a table, a sequence, a type or a
 * key (dbferry renders those from its model): functions, procedures, aggregates, operators,
 * casts, collations, text search objects, views and materialized views, triggers, rules,
 * row-level security, comments, and grants when asked. pg_dump is the reference for their DDL
 * (the way pgcopydb carries them): its schema-only archive of those schemas, read back entry by
 * entry. Entries that need a table the plan does not migrate are left out and named.
 */
export interface DumpedObjects {
  objects: SchemaObjects;
  /** What is not carried, and why: findings for `check`. */
  leftOut: string[];
}

/** pg_dump's words for what dbferry creates from its own model (or what the plan selects). */
const OWN = new Set([
  'SCHEMA', 'EXTENSION', 'TYPE', 'SHELL TYPE', 'DOMAIN', 'CHECK CONSTRAINT', 'TABLE', 'SEQUENCE', 'SEQUENCE OWNED BY', 'SEQUENCE SET',
  'TABLE ATTACH', 'CONSTRAINT', 'FK CONSTRAINT', 'INDEX ATTACH', 'DEFAULT', 'TABLE DATA', 'STATISTICS',
]);
/** Created before the tables are loaded (functions a default or a check may call, views). */
const PRE = new Set([
  'FUNCTION', 'PROCEDURE', 'AGGREGATE', 'OPERATOR', 'OPERATOR CLASS', 'OPERATOR FAMILY', 'CAST', 'COLLATION', 'CONVERSION',
  'TEXT SEARCH CONFIGURATION', 'TEXT SEARCH DICTIONARY', 'TEXT SEARCH PARSER', 'TEXT SEARCH TEMPLATE', 'VIEW', 'MATERIALIZED VIEW',
  'ACL', 'COMMENT',
]);
/**
 * Created after the load: they would fire on, slow down or filter the loaded rows. Default
 * privileges last: set earlier, they would grant on every table dbferry creates after them.
 */
const POST = new Set(['TRIGGER', 'RULE', 'POLICY', 'ROW SECURITY', 'DEFAULT ACL']);
/** Never copied: they act on the whole database or another server; `check` names them. */
const NOT_COPIED = new Set(['EVENT TRIGGER', 'PUBLICATION', 'PUBLICATION TABLE', 'PUBLICATION TABLES IN SCHEMA', 'SUBSCRIPTION', 'FOREIGN DATA WRAPPER', 'SERVER', 'USER MAPPING', 'FOREIGN TABLE', 'LARGE OBJECT']);
/** Kinds worth a finding when left out (a trigger or comment of an unselected table is not). */
const NAMED_WHEN_LEFT_OUT = new Set([...PRE].filter((k) => k !== 'COMMENT' && k !== 'ACL'));

const KNOWN = [...OWN, ...PRE, ...POST, ...NOT_COPIED, 'INDEX'].sort((a, b) => b.length - a.length);

interface TocEntry {
  id: number;
  classOid: number;
  oid: number;
  kind: string;
  /** The rest of the list line (schema, name, owner), for messages only. */
  label: string;
  deps: number[];
  sql: string;
}

/** Reads the schema objects of `schemas` from the source with pg_dump. */
export async function dumpSchemaObjects(
  src: PgEndpoint,
  tls: Plan['source']['tls'],
  schemas: string[],
  select: (schema: string, table: string) => boolean,
  opts: { grants: boolean },
): Promise<DumpedObjects> {
  if (schemas.length === 0) return { objects: { pre: [], post: [], refresh: [] }, leftOut: [] };
  const tools = await findPgTools();
  const work = await mkdtemp(join(process.env.DBFERRY_DUMP_DIR || tmpdir(), 'dbferry-schema-'));
  try {
    const version = await withConnection(src, 'read the server version', async (c) => {
      await refuseLockTableOverflow(c, src, schemas);
      return Number((await c.query("SELECT current_setting('server_version_num') AS v")).rows[0].v);
    });
    checkToolVersion(tools, serverMajor(version), src.description);
    const env = await libpqEnv(src, tls, { appName: 'dbferry schema', workDir: work, toolMajor: tools.major });
    const privileges = opts.grants ? [] : ['--no-privileges'];
    const archive = join(work, 'schema.dump');
    await tool(tools.pgDump, [`--dbname=${conninfoDbname(src.database)}`, '--schema-only', '--format=custom', `--file=${archive}`, '--no-owner', ...privileges,
      '--no-security-labels', '--no-publications', '--no-subscriptions', '--lock-wait-timeout=60000', ...schemas.flatMap((s) => ['--schema', quoteIdent(s)])], env, src, 'pg_dump');
    const listFile = join(work, 'schema.list');
    const sqlFile = join(work, 'schema.sql');
    await tool(tools.pgRestore, ['--list', `--file=${listFile}`, archive], env, src, 'pg_restore');
    await tool(tools.pgRestore, ['--verbose', '--no-owner', ...privileges, `--file=${sqlFile}`, archive], env, src, 'pg_restore');
    const entries = parseArchive(await readFile(listFile, 'utf8'), await readFile(sqlFile, 'utf8'), src.description);
    return await classify(src, entries, select);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The share of the source's lock table pg_dump may take: the rest is the application's. */
const PG_DUMP_LOCK_SHARE = 0.8;

/** Whether pg_dump's locks on `tables` tables would overflow the lock table, and the setting that fits them. */
export function lockTableOverflow(s: { tables: number; per: number; backends: number; prepared: number }): { slots: number; needed: number } | undefined {
  const slots = s.per * (s.backends + s.prepared);
  if (s.tables <= slots * PG_DUMP_LOCK_SHARE) return undefined;
  // Rounded up to a multiple of 64 (the default), as the setting is usually written.
  return { slots, needed: Math.ceil(s.tables / PG_DUMP_LOCK_SHARE / (s.backends + s.prepared) / 64) * 64 };
}

/**
 * pg_dump takes a lock on every table of the schemas it reads, in one transaction, and the
 * server's lock table is shared by every session: a schema of tens of thousands of tables can
 * fill it, and then the application's own queries fail with "out of shared memory" too (seen
 * with 50,000 tables on a default server). Refused before it runs, with the setting to change.
 */
async function refuseLockTableOverflow(c: Client, src: PgEndpoint, schemas: string[]): Promise<void> {
  // The server sizes its lock table by every backend it may run (PostgreSQL's MaxBackends).
  const r = await c.query<{ tables: number; per: number; backends: number; prepared: number }>(
    `SELECT (SELECT count(*) FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace WHERE n.nspname = ANY($1) AND k.relkind IN ('r', 'p'))::int AS tables,
            current_setting('max_locks_per_transaction')::int AS per,
            current_setting('max_connections')::int + current_setting('autovacuum_max_workers')::int + 1
              + current_setting('max_worker_processes')::int + current_setting('max_wal_senders')::int AS backends,
            current_setting('max_prepared_transactions')::int AS prepared`,
    [schemas],
  );
  const { tables, per, backends, prepared } = r.rows[0]!;
  const overflow = lockTableOverflow(r.rows[0]!);
  if (!overflow) return;
  const { slots, needed } = overflow;
  throw ApplicationFailure.create({
    type: FailureType.DatabaseError,
    nonRetryable: true,
    message:
      `${src.description}: pg_dump reads the schema objects under a lock on each of the ${tables} tables of schema${schemas.length > 1 ? 's' : ''} ${schemas.join(', ')} at once, ` +
      `and the server's lock table holds about ${slots} locks for every session together (max_locks_per_transaction ${per} × (${backends} backends + max_prepared_transactions ${prepared})): ` +
      `it would fill it, and the application's queries would fail with "out of shared memory"`,
    details: [{ endpoint: src.description, hint: `set max_locks_per_transaction to at least ${needed} on the source (it takes a restart), or split the schemas over several migrations (tables.include by schema: pg_dump locks every table of each schema it reads), then run dbferry retry` }],
  });
}

async function tool(bin: string, args: string[], env: NodeJS.ProcessEnv, src: PgEndpoint, name: string): Promise<void> {
  const r = await runTool(bin, args, env);
  if (r.code !== 0) {
    throw ApplicationFailure.create({
      type: FailureType.DatabaseError,
      message: `${src.description}: ${name} could not read the schema objects: ${errorLines(r.lastLines).join(' ').slice(0, 1500) || `exit ${r.code ?? r.signal}`}`,
      details: [{ endpoint: src.description, hint: 'fix what the message names on the source, then run dbferry retry' }],
    });
  }
}

/**
 * The archive's entries with their SQL. The list names each entry's kind (pg_dump's fixed
 * words come first on its line, before any name); pg_restore's verbose script heads each
 * entry's SQL with `-- TOC entry N` and its dependencies. A name or a function body could hold
 * such a line: every header must then appear exactly once, or the script is not trusted.
 */
export function parseArchive(list: string, script: string, endpoint: string): TocEntry[] {
  const entries = new Map<number, TocEntry>();
  for (const line of list.split('\n')) {
    const m = /^(\d+); (\d+) (\d+) (.*)$/.exec(line);
    if (!m) continue;
    const rest = m[4]!;
    const kind = KNOWN.find((k) => rest === k || rest.startsWith(`${k} `)) ?? rest.split(' ')[0]!;
    entries.set(Number(m[1]), { id: Number(m[1]), classOid: Number(m[2]), oid: Number(m[3]), kind, label: rest.slice(kind.length + 1), deps: [], sql: '' });
  }
  const lines = script.split('\n');
  const header = /^-- TOC entry (\d+) \(class \d+ OID \d+\)$/;
  const seen = new Set<number>();
  let current: TocEntry | undefined;
  let inHead = false;
  const body: string[] = [];
  const flush = () => {
    if (current) current.sql = body.join('\n').replace(/\n\\unrestrict \S+\s*$/, '').trim();
    body.length = 0;
  };
  for (const line of lines) {
    const h = header.exec(line);
    if (h) {
      const id = Number(h[1]);
      const e = entries.get(id);
      if (!e || seen.has(id)) throw untrusted(endpoint, id);
      // The "--" line opening the header belongs to it, not to the previous entry's SQL.
      if (body.length > 0 && body[body.length - 1] === '--') body.pop();
      flush();
      seen.add(id);
      current = e;
      inHead = true;
      continue;
    }
    if (inHead) {
      const d = /^-- Dependencies: ([\d ]+)$/.exec(line);
      if (d) current!.deps = d[1]!.trim().split(/\s+/).map(Number);
      if (line.startsWith('--')) continue;
      inHead = false;
    }
    if (current) body.push(line);
  }
  flush();
  return [...entries.values()].filter((e) => seen.has(e.id));
}

function untrusted(endpoint: string, id: number): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.Unsupported,
    nonRetryable: true,
    message: `${endpoint}: pg_restore's script of the schema objects has TOC entry ${id} where it was not expected (an object's name or body imitates its headers): the objects cannot be read safely`,
    details: [{ hint: 'find the object whose name or body contains "-- TOC entry" lines on the source, rename or change it, then run dbferry retry' }],
  });
}

async function classify(src: PgEndpoint, entries: TocEntry[], select: (schema: string, table: string) => boolean): Promise<DumpedObjects> {
  const byId = new Map(entries.map((e) => [e.id, e]));
  const relOids = entries.filter((e) => e.kind === 'TABLE' || e.kind === 'MATERIALIZED VIEW').map((e) => e.oid);
  const { rels, identities } = await withConnection(src, 'read the schema objects', async (c) => {
    const r = await c.query<{ oid: number; schema: string; name: string; populated: boolean }>(
      `SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relispopulated AS populated
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY($1::oid[])`,
      [relOids],
    );
    // Names for messages as PostgreSQL spells them (quoted where needed), not as the list shows them.
    const named = entries.filter((e) => e.classOid !== 0 && e.oid !== 0);
    const ids = await c.query<{ id: number; identity: string | null }>(
      `SELECT x.id, (pg_identify_object(x.cls, x.obj, 0)).identity FROM unnest($1::int[], $2::oid[], $3::oid[]) AS x(id, cls, obj)`,
      [named.map((e) => e.id), named.map((e) => e.classOid), named.map((e) => e.oid)],
    );
    return { rels: new Map(r.rows.map((x) => [Number(x.oid), x])), identities: new Map(ids.rows.map((x) => [x.id, x.identity])) };
  });
  const nameOf = (e: TocEntry) => `${e.kind.toLowerCase()} ${identities.get(e.id) ?? e.label.replace(/ \S+$/, '')}`.trim();
  // What is not migrated: tables the plan leaves out, and (transitively) what needs them.
  const excluded = new Set(entries.filter((e) => e.kind === 'TABLE' && !(rels.get(e.oid) && select(rels.get(e.oid)!.schema, rels.get(e.oid)!.name))).map((e) => e.id));
  const why = new Map<number, number>();
  for (const e of entries) {
    const cause = e.deps.find((d) => excluded.has(d));
    if (cause !== undefined && !excluded.has(e.id)) {
      excluded.add(e.id);
      why.set(e.id, why.get(cause) ?? cause);
    }
  }
  const matviews = new Set(entries.filter((e) => e.kind === 'MATERIALIZED VIEW').map((e) => e.id));
  const out: DumpedObjects = { objects: { pre: [], post: [], refresh: [] }, leftOut: [] };
  const section = new Map<number, 'pre' | 'post' | 'own'>();
  for (const e of entries) {
    const name = nameOf(e);
    if (NOT_COPIED.has(e.kind)) {
      out.leftOut.push(`${name} is not copied (it belongs to the whole database or another server): create it on the target if the application needs it`);
      continue;
    }
    // The built-in public schema is the target's own: its comment and grants stay the target's
    // (only its owner may change them).
    if ((e.kind === 'COMMENT' || e.kind === 'ACL') && e.deps.some((d) => byId.get(d)?.kind === 'SCHEMA' && identities.get(d) === 'public')) continue;
    if (excluded.has(e.id)) {
      const cause = byId.get(why.get(e.id) ?? -1);
      if (NAMED_WHEN_LEFT_OUT.has(e.kind) && cause) {
        out.leftOut.push(`${name} is not copied: it needs ${nameOf(cause)}, which the plan does not migrate`);
      }
      continue;
    }
    // An index of a materialized view is the view's, not a table's.
    const kind = e.kind === 'INDEX' ? (e.deps.some((d) => matviews.has(d)) ? 'POST' : 'OWN') : OWN.has(e.kind) ? 'OWN' : POST.has(e.kind) ? 'POST' : PRE.has(e.kind) ? 'PRE' : undefined;
    if (kind === undefined) {
      out.leftOut.push(`${name} is not copied: dbferry does not carry a ${e.kind.toLowerCase()}`);
      continue;
    }
    // A comment (or grant) goes with its object: after the load for a trigger's or a policy's.
    const s = kind === 'OWN' ? 'own' : kind === 'POST' || (e.kind === 'COMMENT' || e.kind === 'ACL' ? e.deps.some((d) => section.get(d) === 'post') : false) ? 'post' : 'pre';
    section.set(e.id, s);
    if (s === 'own' || !e.sql) continue;
    const obj: SqlObject = { kind: e.kind, name, sql: e.sql };
    out.objects[s].push(obj);
    const rel = rels.get(e.oid);
    if (e.kind === 'MATERIALIZED VIEW' && rel?.populated) out.objects.refresh.push({ schema: rel.schema, name: rel.name } satisfies QualifiedName);
  }
  return out;
}
