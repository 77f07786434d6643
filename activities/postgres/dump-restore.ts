import { largerFirst, listed } from '../../plan/table-lists';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { FailureType, NEEDS_PERSON, type FailureDetails } from '../../plan/failure-types';
import type { ActivityInput, DumpRestoreResult } from '../../plan/migration-types';
import { qualifiedKey, type SchemaModel, type SqlObject, type TableModel } from '../../plan/schema-model';
import { inParallel } from '../../plan/in-parallel';
import { grantsAsked } from '../../plan/plan-schema';
import { withHeartbeat } from '../heartbeat';
import { ensureBookkeeping, readModel } from '../target/bookkeeping';
import { refuseExistingTables } from '../pg/catalog';
import { checksumQuery, sourceChecksum, type ChecksumMethod } from '../pg/checksum';
import { closeQuietly, connect, resolveEndpoint, withConnection, type PgEndpoint } from '../pg/connection';
import { dumpRestorePreDataStatements, freeStandingSequences, sequenceSetvalStatement } from '../target/ddl';
import { qualifiedTable } from '../../plan/sql-names';
import { classifyToolError, HINTS, scrub, toFailure } from '../pg/errors';
import { introspectPostgres } from './introspect';
import { dumpSchemaObjects } from './schema-objects';
import { applySchemaObjects, refreshMaterializedViews } from '../target/schema-objects';
import {
  checkToolVersion,
  conninfoDbname,
  dumpTablePattern,
  errorLines,
  findPgTools,
  libpqEnv,
  runTool,
  serverMajor,
  tableInOutput,
  type PgTools,
  type ToolResult,
} from './pg-tools';
import { tableSelector } from './selection';

interface Progress {
  phase: 'prepare' | 'dump' | 'restore' | 'analyze' | 'done';
  tablesTotal: number;
  /** Tables whose data pg_dump / pg_restore finished (in the current phase). */
  tablesDone: number;
  /** Bytes written to the dump directory (dump), or of the table data restored so far (restore). */
  bytes: number;
  bytesTotal?: number;
}

/**
 * Mode dump-restore: `pg_dump -Fd -j N` of the selected tables inside one exported snapshot of
 * the source, then `pg_restore -j N` into the target. pg_dump makes the tables with their keys,
 * indexes, constraints and owned sequences; dbferry first makes what they need and pg_dump -t
 * leaves out (schemas, extensions, types, free-standing sequences) and records, like a full
 * load, each table's row count and checksum read inside the very snapshot pg_dump reads, so the
 * validate step compares against exactly what was dumped.
 *
 * A retry of the same run (its _dbferry.migrations row exists) first drops the tables the failed
 * attempt restored (with what it made on them): what it left is replaced, never doubled. Passwords reach pg_dump and pg_restore
 * in their environment, never on their command line.
 */
export async function dumpRestorePostgres({ plan, migration }: ActivityInput): Promise<DumpRestoreResult> {
  const started = Date.now();
  const [src, tgt] = await Promise.all([resolveEndpoint(plan, 'source'), resolveEndpoint(plan, 'target')]);
  const jobs = plan.load.parallel;
  const progress: Progress = { phase: 'prepare', tablesTotal: 0, tablesDone: 0, bytes: 0 };

  return withHeartbeat(() => ({ ...progress }), async (signal) => {
    const tools = await findPgTools();
    const work = await dumpFolder();
    const dumpDir = join(work, 'dump');
    try {
      // ---- the snapshot, the model, the target prepared, the dump and the counts -------------
      const holder = await connect(src, { purpose: 'dump snapshot' });
      let snapshot: string;
      let model: SchemaModel;
      let again: boolean;
      let later: SqlObject[];
      let counts: Map<string, SourceCount>;
      let dumpMs: number;
      try {
        const srcFail = (err: unknown, doing: string, table?: string) =>
          toFailure(err, 'source', { endpoint: src.description, secrets: src.secrets, doing, table });
        let version: number;
        try {
          await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
          const { rows } = await holder.query<{ snapshot: string; version: number }>(
            "SELECT pg_export_snapshot() AS snapshot, current_setting('server_version_num')::int AS version",
          );
          snapshot = rows[0]!.snapshot;
          version = rows[0]!.version;
        } catch (err) {
          throw srcFail(err, 'exporting the dump snapshot');
        }
        checkToolVersion(tools, serverMajor(version), src.description);
        try {
          // Inside the snapshot: the tables dumped are exactly the tables described.
          const { warnings: _warnings, ...introspected } = await introspectPostgres(holder, tableSelector(plan));
          model = introspected;
        } catch (err) {
          throw srcFail(err, 'reading the source schema');
        }
        // pg_dump -t brings the tables with their triggers, rules and policies, not the
        // functions, views and other objects of their schemas: those come from the schema dump.
        const { objects } = await dumpSchemaObjects(src, plan.source.tls, model.schemas, tableSelector(plan), { grants: grantsAsked(plan) });
        model = { ...model, objects };
        progress.tablesTotal = model.tables.length;
        ({ again, later } = await prepareTarget(tgt, migration, model));
        if (model.tables.length === 0) {
          // pg_dump without -t would dump everything: nothing is selected, nothing is copied.
          counts = new Map();
          dumpMs = 0;
        } else {
          const t0 = Date.now();
          counts = await dumpAndCount({ holder, tls: plan.source.tls, tools, src, model, snapshot, dumpDir, jobs, checksums: plan.validate.checksums, progress, signal, srcFail, work });
          dumpMs = Date.now() - t0;
        }
      } finally {
        // The snapshot is needed no longer: the source is not held back during the restore.
        await closeQuietly(holder);
      }

      // ---- the restore -----------------------------------------------------------------------
      const t1 = Date.now();
      const files = model.tables.length > 0 ? await fileSizes(dumpDir) : new Map<string, number>();
      const bytes = [...files.values()].reduce((a, b) => a + b, 0);
      if (model.tables.length > 0) {
        progress.phase = 'restore';
        progress.tablesDone = 0;
        progress.bytes = 0;
        progress.bytesTotal = bytes;
        await restore({ tools, tgt, plan, model, dumpDir, jobs, progress, files, signal, work });
      }
      // The objects that needed the tables, then those that come after the rows.
      await withConnection(tgt, 'create schema objects', async (c) => {
        await applySchemaObjects(c, tgt, later, { deferMissing: false });
        await applySchemaObjects(c, tgt, model.objects?.post ?? [], { deferMissing: false });
        await refreshMaterializedViews(c, tgt, model.objects?.refresh ?? []);
      });
      const restoreMs = Date.now() - t1;

      // ---- sequences, statistics and bookkeeping ---------------------------------------------
      progress.phase = 'analyze';
      await finishTarget(tgt, migration, model, counts, snapshot, jobs, signal, progress);
      progress.phase = 'done';
      const restoredRows = model.tables.map((t) => ({ table: qualifiedKey(t), rows: counts.get(qualifiedKey(t))?.rows ?? '0' }));
      return {
        snapshot,
        tables: listed(restoredRows, largerFirst((t) => t.rows)).sort((a, b) => a.table.localeCompare(b.table)),
        totals: { tables: restoredRows.length, rows: restoredRows.reduce((n, t) => n + BigInt(t.rows), 0n).toString() },
        bytes,
        jobs,
        dumpMs,
        restoreMs,
        ms: Date.now() - started,
      };
    } finally {
      // The dump holds the source's rows: it never outlives the step, whatever happened.
      await rm(work, { recursive: true, force: true });
    }
  });
}

/** A private (0700) folder for the dump, under $DBFERRY_DUMP_DIR or the system's temp folder. */
async function dumpFolder(): Promise<string> {
  const parent = process.env.DBFERRY_DUMP_DIR || tmpdir();
  try {
    return await mkdtemp(join(parent, 'dbferry-dump-'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw ApplicationFailure.create({
      type: code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? FailureType.PermissionDenied : FailureType.Unsupported,
      nonRetryable: true,
      message: `mode dump-restore: cannot make a folder for the dump in ${parent} on worker ${hostname()} (${code})`,
      details: [{ hint: 'set DBFERRY_DUMP_DIR on the workers to a writable folder with room for the compressed data, then run dbferry retry' }],
    });
  }
}

/**
 * Makes the target ready for pg_restore, in one transaction with the run's _dbferry.migrations
 * row. A first attempt refuses tables that are already there (dbferry will not restore over a
 * table it did not make); returns whether this run had made them already (a retry).
 */
async function prepareTarget(tgt: PgEndpoint, migration: ActivityInput['migration'], model: SchemaModel): Promise<{ again: boolean; later: SqlObject[] }> {
  return withConnection(tgt, 'prepare restore', async (c) => {
    const fail = (err: unknown, doing: string) => toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, doing });
    try {
      await ensureBookkeeping(c);
    } catch (err) {
      throw fail(err, 'creating schema _dbferry');
    }
    const again = (await readModel(c, migration.runId)) !== undefined;
    if (!again) await refuseExistingTables(c, tgt.description, model.tables, 'restore over', migration.name);
    if (again) await dropRestoredTables(c, tgt, model);
    await c.query('BEGIN');
    try {
      for (const sql of dumpRestorePreDataStatements(model, again)) {
        if (!again) {
          await c.query(sql).catch((err) => Promise.reject(fail(err, `running: ${sql.split('\n')[0]!.slice(0, 200)}`)));
          continue;
        }
        // A retry: what the earlier attempt made (a type) is there already.
        await c.query('SAVEPOINT pre_data');
        try {
          await c.query(sql);
        } catch (err) {
          if ((err as { code?: string }).code !== '42710') throw fail(err, `running: ${sql.split('\n')[0]!.slice(0, 200)}`);
          await c.query('ROLLBACK TO SAVEPOINT pre_data');
        }
        await c.query('RELEASE SAVEPOINT pre_data');
      }
      await c.query(
        `INSERT INTO _dbferry.migrations (run_id, name, model) VALUES ($1, $2, $3)
         ON CONFLICT (run_id) DO UPDATE SET model = EXCLUDED.model`,
        [migration.runId, migration.name, JSON.stringify(model)],
      );
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw fail(err, 'preparing the target for the restore');
    }
    // Functions, collations… the tables' DDL may need; those that need the tables wait.
    const later = await applySchemaObjects(c, tgt, model.objects?.pre ?? [], { deferMissing: true });
    return { again, later };
  });
}

/**
 * A retry starts from no migrated table: those an earlier attempt restored are dropped, with
 * what it made on top of them (views, functions of their row types). pg_restore --clean cannot
 * do it for partitioned tables (their partitions' keys are inherited) nor past such objects.
 * This run made them: a first attempt refuses tables it did not make.
 */
async function dropRestoredTables(c: Client, tgt: PgEndpoint, model: SchemaModel): Promise<void> {
  // In batches: each dropped table holds locks until its statement ends.
  for (let i = 0; i < model.tables.length; i += 500) {
    const sql = `DROP TABLE IF EXISTS ${model.tables.slice(i, i + 500).map((t) => qualifiedTable(t.schema, t.name)).join(', ')} CASCADE`;
    await c.query(sql).catch((err: unknown) => {
      throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, doing: 'dropping the tables an earlier attempt restored' });
    });
  }
}

interface DumpContext {
  holder: Client;
  tls: ActivityInput['plan']['source']['tls'];
  tools: PgTools;
  src: PgEndpoint;
  model: SchemaModel;
  snapshot: string;
  dumpDir: string;
  work: string;
  jobs: number;
  checksums: boolean;
  progress: Progress;
  signal?: AbortSignal;
  srcFail: (err: unknown, doing: string, table?: string) => ApplicationFailure;
}

/**
 * pg_dump of the selected tables and, at the same time on the holder connection (the same
 * snapshot), each table's row count and checksum. The first failure stops the other.
 */
/** A table's count and checksum read in the dump's snapshot. */
interface SourceCount {
  rows: string;
  checksum: string | null;
  method: ChecksumMethod | null;
}

async function dumpAndCount(ctx: DumpContext): Promise<Map<string, SourceCount>> {
  const { holder, model, progress } = ctx;
  progress.phase = 'dump';
  progress.tablesDone = 0;
  progress.bytes = 0;
  if (ctx.signal?.aborted) throw ctx.signal.reason;
  const stop = new AbortController();
  const onCancel = () => stop.abort(ctx.signal?.reason);
  ctx.signal?.addEventListener('abort', onCancel, { once: true });
  let first: unknown;
  const failed = (err: unknown) => {
    first ??= err;
    if (!stop.signal.aborted) stop.abort(err);
    // Ends a count still running in the snapshot transaction.
    void closeQuietly(holder, 1_000);
  };
  const meter = setInterval(() => {
    void fileSizes(ctx.dumpDir).then((f) => (progress.bytes = [...f.values()].reduce((a, b) => a + b, 0)), () => undefined);
  }, 2_000);
  try {
    const dumping = runDump(ctx, stop.signal).catch((err) => failed(err));
    const counting = (async () => {
      const out = new Map<string, SourceCount>();
      for (const t of model.tables) {
        if (stop.signal.aborted) return out;
        const key = qualifiedKey(t);
        try {
          if (ctx.checksums) {
            out.set(key, await sourceChecksum(holder, t));
          } else {
            const r = await holder.query<{ rows: string }>(checksumQuery(t, false));
            out.set(key, { rows: r.rows[0]!.rows, checksum: null, method: null });
          }
        } catch (err) {
          throw ctx.srcFail(err, `counting the rows of ${key} in the dump snapshot`, key);
        }
      }
      return out;
    })().catch((err) => {
      failed(err);
      return undefined;
    });
    const [, counts] = await Promise.all([dumping, counting]);
    if (first !== undefined) throw first;
    return counts!;
  } finally {
    clearInterval(meter);
    ctx.signal?.removeEventListener('abort', onCancel);
  }
}

async function runDump(ctx: DumpContext, signal: AbortSignal): Promise<void> {
  const { tools, src, model, progress } = ctx;
  const env = await libpqEnv(src, ctx.tls, { appName: 'dbferry dump', workDir: ctx.work, toolMajor: tools.major });
  const args = [
    `--dbname=${conninfoDbname(src.database)}`,
    '--format=directory',
    `--jobs=${ctx.jobs}`,
    `--file=${ctx.dumpDir}`,
    `--snapshot=${ctx.snapshot}`,
    '--compress=1',
    '--no-owner',
    '--no-privileges',
    '--no-security-labels',
    '--lock-wait-timeout=300000',
    '--strict-names',
    '--verbose',
    ...model.tables.flatMap((t) => ['--table', dumpTablePattern(t)]),
  ];
  let started = 0;
  let finished = 0;
  const result = await runTool(tools.pgDump, args, env, {
    signal,
    onLine: (line) => {
      if (line.includes('dumping contents of table ')) started++;
      else if (/finished item \d+ TABLE DATA /.test(line)) finished++;
      else return;
      progress.tablesDone = ctx.jobs > 1 ? finished : Math.max(0, started - 1);
    },
  });
  if (result.code !== 0) throw toolFailure('pg_dump', result, src, model.tables, 'dumping the source');
  progress.tablesDone = model.tables.length;
}

interface RestoreContext {
  tools: PgTools;
  tgt: PgEndpoint;
  plan: ActivityInput['plan'];
  model: SchemaModel;
  dumpDir: string;
  work: string;
  jobs: number;
  progress: Progress;
  files: Map<string, number>;
  signal?: AbortSignal;
}

async function restore(ctx: RestoreContext): Promise<void> {
  const { tools, tgt, plan, model, progress } = ctx;
  const env = await libpqEnv(tgt, plan.target.tls, { appName: 'dbferry restore', workDir: ctx.work, toolMajor: tools.major });
  const args = [
    `--dbname=${conninfoDbname(tgt.database)}`,
    '--format=directory',
    `--jobs=${ctx.jobs}`,
    '--no-owner',
    '--no-privileges',
    '--no-tablespaces',
    '--no-security-labels',
    '--exit-on-error',
    '--verbose',
    ctx.dumpDir,
  ];
  let started = 0;
  let finished = 0;
  const result = await runTool(tools.pgRestore, args, env, {
    signal: ctx.signal,
    onLine: (line) => {
      if (line.includes('processing data for table ')) {
        started++;
      } else {
        const m = /finished item (\d+) TABLE DATA /.exec(line);
        if (!m) return;
        finished++;
        progress.bytes += ctx.files.get(m[1]!) ?? 0;
      }
      progress.tablesDone = ctx.jobs > 1 ? finished : Math.max(0, started - 1);
    },
  });
  if (result.code !== 0) throw toolFailure('pg_restore', result, tgt, model.tables, 'restoring into the target');
  progress.tablesDone = model.tables.length;
  progress.bytes = progress.bytesTotal ?? progress.bytes;
}

/**
 * After the restore: free-standing sequences set to the source's state, statistics (pg_restore
 * leaves none), and the ledger rows validation reads, in one transaction.
 */
async function finishTarget(
  tgt: PgEndpoint,
  migration: ActivityInput['migration'],
  model: SchemaModel,
  counts: Map<string, SourceCount>,
  snapshot: string,
  jobs: number,
  signal: AbortSignal | undefined,
  progress: Progress,
): Promise<void> {
  progress.tablesDone = 0;
  const lanes: Client[] = [];
  try {
    await inParallel(model.tables, jobs, async (t: TableModel, i) => {
      if (signal?.aborted) throw signal.reason;
      lanes[i] ??= await connect(tgt, { purpose: 'analyze' });
      const key = qualifiedKey(t);
      try {
        await lanes[i]!.query(`ANALYZE ${qualifiedTable(t.schema, t.name)}`);
      } catch (err) {
        throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, table: key, doing: `analyzing ${key}` });
      }
      progress.tablesDone++;
    });
  } finally {
    await Promise.all(lanes.map((c) => closeQuietly(c)));
  }
  await withConnection(tgt, 'record the restore', async (c) => {
    await c.query('BEGIN');
    for (const s of freeStandingSequences(model)) {
      const sql = sequenceSetvalStatement(s);
      if (sql) await c.query(sql);
    }
    await c.query('DELETE FROM _dbferry.table_loads WHERE run_id = $1', [migration.runId]);
    for (const t of model.tables) {
      const key = qualifiedKey(t);
      const n = counts.get(key);
      await c.query(
        `INSERT INTO _dbferry.table_loads (run_id, table_key, chunk, rows, bytes, source_checksum, checksum_method, snapshot)
         VALUES ($1, $2, 0, $3, 0, $4, $5, $6)`,
        [migration.runId, key, n?.rows ?? '0', n?.checksum ?? null, n?.method ?? null, snapshot],
      );
    }
    await c.query('UPDATE _dbferry.migrations SET model = $2 WHERE run_id = $1', [migration.runId, JSON.stringify(model)]);
    await c.query('COMMIT');
  });
}

/** Sizes of the files in the dump directory by dump id (`3817.dat.gz` → 3817), and toc.dat. */
async function fileSizes(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return out;
  }
  await Promise.all(
    names.map(async (name) => {
      const s = await stat(join(dir, name)).catch(() => undefined);
      if (s) out.set(name.replace(/\.dat(\.\w+)?$/, ''), s.size);
    }),
  );
  return out;
}

/**
 * A failed pg_dump / pg_restore as a typed failure: the endpoint, the table when its output
 * names one, and its last error lines, scrubbed of the endpoint's secrets.
 */
function toolFailure(tool: string, result: ToolResult, ep: PgEndpoint, tables: TableModel[], doing: string): ApplicationFailure {
  const lines = errorLines(result.lastLines);
  const shown = (lines.length > 0 ? lines : result.lastLines).slice(-20);
  const text = scrub(shown.join('\n'), ep.secrets).slice(-4000);
  const table = tableInOutput(shown, tables);
  const type = classifyToolError(text, ep.side);
  const how = result.signal ? `was stopped by ${result.signal}` : `exited with code ${result.code}`;
  // An object the restore needs and dbferry does not make (a function a trigger or default
  // calls, a role a policy names): trying again cannot help, a person has to add it.
  const missingObject = ep.side === 'target' && type === FailureType.DatabaseError && /does not exist/.test(text);
  const hint =
    HINTS[type] ??
    (missingObject
      ? 'the restore needs an object dbferry does not create (a function, operator or role the tables use): create it on the target or exclude the table, then run dbferry retry'
      : /No space left on device/i.test(text)
        ? 'free space where the worker writes the dump (DBFERRY_DUMP_DIR, else TMPDIR), then run dbferry retry'
        : undefined);
  const details: FailureDetails = { endpoint: ep.description, table, hint };
  return ApplicationFailure.create({
    type,
    nonRetryable: NEEDS_PERSON.includes(type) || missingObject,
    message: `${ep.description}${table ? `, table ${table}` : ''}: ${tool} ${how} while ${doing}:\n${text || '(no output)'}`,
    details: [details],
  });
}
