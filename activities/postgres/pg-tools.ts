/**
 * Running PostgreSQL's client programs (pg_dump, pg_restore) from an activity: where to find
 * them, how to hand them a connection without putting a password on a command line, and how to
 * watch their output with bounded memory.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import type { Plan } from '../../plan/plan-schema';
import { qualifiedKey, type QualifiedName } from '../../plan/schema-model';
import { connectionUrl, type PgEndpoint } from '../pg/connection';
import { qualifiedTable, quoteIdent } from '../../plan/sql-names';

export interface PgTools {
  pgDump: string;
  pgRestore: string;
  /** Major version of pg_dump (pg_restore comes from the same folder). */
  major: number;
  version: string;
  /** Where they were found, for messages. */
  where: string;
}

const DEBIAN_ROOT = '/usr/lib/postgresql';

/**
 * The folder to take pg_dump and pg_restore from: $DBFERRY_PG_BIN, else the newest
 * /usr/lib/postgresql/N/bin that has both (Debian installs several side by side, and only the
 * newest reads every server), else undefined: the PATH.
 */
export function pgToolsDir(env: NodeJS.ProcessEnv = process.env, root = DEBIAN_ROOT): string | undefined {
  if (env.DBFERRY_PG_BIN) return env.DBFERRY_PG_BIN;
  let versions: string[] = [];
  try {
    versions = readdirSync(root).filter((v) => /^\d+(\.\d+)?$/.test(v));
  } catch {
    return undefined;
  }
  versions.sort((a, b) => Number(b) - Number(a));
  return versions.map((v) => join(root, v, 'bin')).find((dir) => existsSync(join(dir, 'pg_dump')) && existsSync(join(dir, 'pg_restore')));
}

/** `pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)` → 15; 9.6 → 9. */
export function parseToolVersion(text: string): { major: number; version: string } | undefined {
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(text);
  if (!m) return undefined;
  return { major: Number(m[1]), version: m[0].replace(/^\(PostgreSQL\)\s+/, '') };
}

function toolMissing(message: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.Unsupported,
    nonRetryable: true,
    message,
    details: [
      {
        hint: 'install the PostgreSQL client programs (Debian: postgresql-client-N, N at least the source server major version) on every worker, or point DBFERRY_PG_BIN at their folder, then run dbferry retry',
      },
    ],
  });
}

/** Finds pg_dump and pg_restore on this worker and reads their version. */
export async function findPgTools(env: NodeJS.ProcessEnv = process.env): Promise<PgTools> {
  const dir = pgToolsDir(env);
  const where = dir ?? 'the PATH';
  const pgDump = dir ? join(dir, 'pg_dump') : 'pg_dump';
  const pgRestore = dir ? join(dir, 'pg_restore') : 'pg_restore';
  const versions = await Promise.all(
    [pgDump, pgRestore].map(
      (bin) =>
        new Promise<string | undefined>((resolve) =>
          execFile(bin, ['--version'], { timeout: 30_000, env: { PATH: env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' } }, (err, stdout) =>
            resolve(err ? undefined : stdout),
          ),
        ),
    ),
  );
  const [dumpV, restoreV] = versions.map((v) => (v === undefined ? undefined : parseToolVersion(v)));
  if (!dumpV || !restoreV) {
    const missing = [!dumpV ? 'pg_dump' : undefined, !restoreV ? 'pg_restore' : undefined].filter(Boolean).join(' and ');
    throw toolMissing(
      `${missing} not found or not runnable on worker ${hostname()} (looked in ${where}; DBFERRY_PG_BIN overrides): dbferry runs them to carry the schema objects and for mode dump-restore`,
    );
  }
  return { pgDump, pgRestore, major: dumpV.major, version: dumpV.version, where };
}

/** pg_dump refuses a server newer than itself; say so before it starts, with what to do. */
export function checkToolVersion(tools: PgTools, serverMajor: number, endpoint: string): void {
  if (tools.major < serverMajor) {
    throw toolMissing(
      `pg_dump ${tools.version} (${tools.where}) on worker ${hostname()} is older than ${endpoint} (PostgreSQL ${serverMajor}); pg_dump must be at least the server's major version`,
    );
  }
}

/** server_version_num → major: 150020 → 15; before 10 the major had two parts, 90624 → 9 (as parseToolVersion reads 9.6). */
export function serverMajor(versionNum: number): number {
  return Math.floor(versionNum / 10000);
}

/** A pg_dump -t pattern matching exactly this table: quoted, so `.`, `*`, `?`, capitals and `"` are literal. */
export function dumpTablePattern(t: QualifiedName): string {
  return qualifiedTable(t.schema, t.name);
}

/**
 * `--dbname` as a conninfo string holding only the database name: a bare name with `=` in it
 * would itself be read as a conninfo string. Host, user and password come from the environment.
 */
export function conninfoDbname(database: string): string {
  return `dbname='${database.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** libpq URL query parameters and the environment variables that carry them. */
const URL_PARAM_ENV: Record<string, string> = {
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  sslcrl: 'PGSSLCRL',
  sslcompression: 'PGSSLCOMPRESSION',
  channel_binding: 'PGCHANNELBINDING',
  gssencmode: 'PGGSSENCMODE',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  options: 'PGOPTIONS',
  target_session_attrs: 'PGTARGETSESSIONATTRS',
  krbsrvname: 'PGKRBSRVNAME',
  hostaddr: 'PGHOSTADDR',
  host: 'PGHOST',
  port: 'PGPORT',
  user: 'PGUSER',
  password: 'PGPASSWORD',
};

/**
 * The environment of a pg_dump / pg_restore child: only what it needs (no inherited PG*
 * variables, no other secrets of the worker), the connection's password in PGPASSWORD (a
 * process's environment is readable only by its own user, unlike its command line), English
 * messages to parse. A CA bundle given inline is written as a 0600 file into `workDir`.
 */
export async function libpqEnv(
  ep: PgEndpoint,
  tls: Plan['source']['tls'],
  opts: { appName: string; workDir: string; toolMajor: number },
): Promise<NodeJS.ProcessEnv> {
  const url = new URL(await connectionUrl(ep));
  const env: NodeJS.ProcessEnv = { LC_ALL: 'C', PGAPPNAME: opts.appName.slice(0, 63), PGCONNECT_TIMEOUT: '15' };
  for (const k of ['PATH', 'HOME', 'TMPDIR']) if (process.env[k]) env[k] = process.env[k];
  // Sockets may be given percent-encoded in the host part (postgres://u@%2Fvar%2Frun%2Fpostgresql/db).
  if (url.hostname) env.PGHOST = decodeURIComponent(url.hostname.replace(/^\[(.*)\]$/, '$1'));
  if (url.port) env.PGPORT = url.port;
  if (url.username) env.PGUSER = decodeURIComponent(url.username);
  if (url.password) env.PGPASSWORD = decodeURIComponent(url.password);
  for (const [k, v] of url.searchParams) {
    const name = URL_PARAM_ENV[k];
    if (name) env[name] = v;
  }
  // node-postgres spellings libpq does not know.
  if (env.PGSSLMODE === 'no-verify') env.PGSSLMODE = 'require';
  if (!env.PGSSLMODE && url.searchParams.get('ssl') === 'true') env.PGSSLMODE = 'require';
  env.PGDATABASE = ep.database;
  if (tls && tls.mode !== 'disable') {
    env.PGSSLMODE = tls.mode;
    if (tls.mode === 'verify-ca' || tls.mode === 'verify-full') {
      const ca = (ep.ssl && typeof ep.ssl === 'object' ? ep.ssl.ca : undefined) as string | undefined;
      if (ca) {
        const file = join(opts.workDir, `${ep.side}-ca.pem`);
        await writeFile(file, ca, { mode: 0o600 });
        env.PGSSLROOTCERT = file;
      } else if (opts.toolMajor >= 16) {
        // Without a bundle, node verifies against the system's CAs; libpq 16+ can too.
        env.PGSSLROOTCERT = 'system';
      }
    } else {
      // libpq's `require` verifies the server when it finds a root certificate; node's does not.
      delete env.PGSSLROOTCERT;
    }
  } else if (tls?.mode === 'disable') {
    env.PGSSLMODE = 'disable';
  }
  return env;
}

export interface ToolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last lines the program wrote to stderr (each cut to 2,000 characters). */
  lastLines: string[];
}

/**
 * Runs a program, handing each stderr line to `onLine` and keeping only the last `keepLines`.
 * Aborting `signal` stops it (SIGTERM, then SIGKILL after 10 s: pg_dump and pg_restore pass a
 * SIGTERM on to their parallel workers) and rejects with the signal's reason once it has exited.
 */
export function runTool(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  opts: { signal?: AbortSignal; onLine?: (line: string) => void; keepLines?: number } = {},
): Promise<ToolResult> {
  const { signal, onLine, keepLines = 50 } = opts;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    const lastLines: string[] = [];
    let killTimer: NodeJS.Timeout | undefined;
    const stop = () => {
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      killTimer.unref();
    };
    signal?.addEventListener('abort', stop, { once: true });
    const lines = createInterface({ input: child.stderr!, crlfDelay: Infinity });
    lines.on('line', (line) => {
      lastLines.push(line.length > 2000 ? `${line.slice(0, 2000)}…` : line);
      if (lastLines.length > keepLines) lastLines.shift();
      onLine?.(line);
    });
    child.once('error', (err) => {
      signal?.removeEventListener('abort', stop);
      clearTimeout(killTimer);
      reject(err);
    });
    child.once('close', (code, sig) => {
      signal?.removeEventListener('abort', stop);
      clearTimeout(killTimer);
      if (signal?.aborted) reject(signal.reason);
      else resolve({ code, signal: sig, lastLines });
    });
  });
}

const TOOL_LINE = /^(?:(?:pg_dump|pg_restore): )+(.*)$/s;
const ERRORISH = /^(?:error|detail|hint|warning|fatal):|^from TOC entry|^too many errors/i;
/** Progress lines of --verbose; with -j, the processes' lines may lose their prefix to each other's. */
const VERBOSE =
  /^(?:processing (?:item|data)|launching item|finished (?:item|main)|creating |executing |dumping contents|entering main|connecting to|reading |saving |while PROCESSING|restoring |dropping )/;

/**
 * The lines of a failed run that describe the failure: from its first error on, its errors,
 * details, the SQL and TOC entry they are about, without the verbose progress lines.
 */
export function errorLines(lines: string[]): string[] {
  const first = lines.findIndex((line) => ERRORISH.test(TOOL_LINE.exec(line)?.[1] ?? ''));
  if (first < 0) return lines.filter((line) => line.trim() !== '' && !VERBOSE.test(TOOL_LINE.exec(line)?.[1] ?? line));
  // The TOC entry being processed is printed just before the error.
  const from = first > 0 && /from TOC entry/.test(lines[first - 1]!) ? first - 1 : first;
  return lines.slice(from).filter((line) => {
    const m = TOOL_LINE.exec(line);
    if (m) return ERRORISH.test(m[1]!) || /^from TOC entry/.test(m[1]!);
    return line.trim() !== '' && !VERBOSE.test(line);
  });
}

/**
 * Which selected table a failure is about, read from the tools' wording: `"schema.table"` in
 * their progress lines, a quoted qualified name in SQL they echo, `TABLE DATA table owner` in a
 * TOC entry, or a bare table name in the server's message. The most specific form wins; among
 * tables matching equally, the longest name.
 */
export function tableInOutput(lines: string[], tables: QualifiedName[]): string | undefined {
  const text = `${lines.join('\n')}\n`;
  const forms: Array<(t: QualifiedName) => string[]> = [
    (t) => [`"${t.schema}.${t.name}"`, `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`, `${minimalQuote(t.schema)}.${minimalQuote(t.name)}`],
    (t) => [` ${t.schema} ${t.name} `, `TABLE DATA ${t.name} `, `TABLE ${t.name} `, `CONSTRAINT ${t.name} `],
    (t) => [`"${t.name}"`, `table ${t.name}\n`, `table ${minimalQuote(t.name)}\n`],
  ];
  for (const form of forms) {
    const found = tables.filter((t) => form(t).some((f) => text.includes(f)));
    if (found.length > 0) return qualifiedKey(found.sort((a, b) => qualifiedKey(b).length - qualifiedKey(a).length)[0]!);
  }
  return undefined;
}

/** How PostgreSQL's quote_identifier writes a name (keywords aside). */
function minimalQuote(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : quoteIdent(name);
}
