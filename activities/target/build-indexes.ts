import { applySchemaObjects, refreshMaterializedViews } from './schema-objects';
import type { Client, QueryResult } from 'pg';
import type { ActivityInput, BuildResult } from '../../plan/migration-types';
import { qualifiedKey, type SchemaModel, type SequenceModel, type TableModel } from '../../plan/schema-model';
import { inParallel } from '../../plan/in-parallel';
import { withHeartbeat } from '../heartbeat';
import { closeQuietly, connect, type PgEndpoint } from '../pg/connection';
import { postLoadStatements, sequenceSetvalStatement } from './ddl';
import { qualifiedTable, quoteIdent, quoteLiteral } from '../../plan/sql-names';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import { orphansQuery } from './reference-ddl';
import { toFailure } from '../pg/errors';
import { loadModel, tablesByKey } from './model';
import { tableKeysBuilt, tableKeysDeferred } from '../telemetry';

type Stmt = { table: string; name: string; sql: string };

/** Per connection that builds: enough for a large key's sort to stay mostly in memory. */
const MAINTENANCE_WORK_MEM = "SET maintenance_work_mem = '256MB'";

/**
 * After the load: primary keys, unique and exclusion constraints and indexes (in parallel),
 * foreign keys (NOT VALID, then VALIDATE: the data comes from one snapshot), sequences carried
 * from the source's current state and never below the loaded maximum, then ANALYZE.
 * Every statement first checks whether it already happened, so a retry continues where the
 * last attempt stopped.
 */
export async function buildIndexes(
  { plan, migration }: ActivityInput,
  tgt: PgEndpoint,
  /** The source's sequences as they are now (the source engine reads them). */
  sequenceStates: (sequences: SequenceModel[]) => Promise<SequenceModel[]>,
): Promise<BuildResult> {
  const started = Date.now();
  const model = await loadModel(tgt, migration.runId);
  const post = postLoadStatements(model);
  const byKey = new Map(model.tables.map((t) => [qualifiedKey(t), t]));
  const progress = { step: 'keys and indexes', done: 0, total: 0, running: [] as string[] };

  return withHeartbeat(() => ({ ...progress }), async () => {
    const lanes: Client[] = [];
    const lane = async (i: number) => {
      if (!lanes[i]) {
        const c = await connect(tgt, { purpose: 'build indexes' });
        lanes[i] = c;
        await c.query(MAINTENANCE_WORK_MEM);
      }
      return lanes[i]!;
    };
    // What a loader built while other tables copied (pipelined load), or an earlier attempt, in one read.
    const built = await builtNames(await lane(0));
    const run = async (stmts: Stmt[], parallel: number, kind: 'constraint' | 'index' | 'attach' | 'validate' | 'backfill' | 'trigger') => {
      if (kind === 'constraint' || kind === 'index') stmts = stmts.filter((s) => !built[kind].has(`${s.table}\u0000${s.name}`));
      progress.total += stmts.length;
      await inParallel(stmts, parallel, async (s, i) => {
        const c = await lane(i);
        progress.running.push(s.name);
        try {
          if (kind === 'constraint' || kind === 'index') {
            // A loader of a dead worker may still be building this table's keys on a backend the
            // server has not yet ended: wait for it, then look again, rather than build twice.
            // Two round trips, not five: at 50,000 tables each one costs seconds.
            try {
              const exists = await lockAndLook(c, buildLockKey(migration.runId), s, kind === 'constraint' ? byKey.get(s.table) : undefined);
              await c.query(exists ? 'COMMIT' : `${s.sql};\nCOMMIT`);
            } catch (err) {
              await c.query('ROLLBACK').catch(() => undefined);
              throw err;
            }
            return;
          }
          if (kind === 'backfill') {
            // A retry runs after the source's triggers were created: as a replica, only
            // dbferry's own (ENABLE ALWAYS) fire on the rows a backfill rewrites.
            await c.query('BEGIN');
            try {
              await c.query('SET LOCAL session_replication_role = replica');
              await c.query(s.sql);
              await c.query('COMMIT');
            } catch (err) {
              await c.query('ROLLBACK').catch(() => undefined);
              throw err;
            }
            return;
          }
          await c.query(s.sql);
        } catch (err) {
          const doing = { validate: 'validating', backfill: 'filling', constraint: 'creating', index: 'creating', attach: 'attaching', trigger: 'creating trigger' }[kind];
          throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, table: s.table, doing: `${doing} ${s.name}` });
        } finally {
          progress.running = progress.running.filter((n) => n !== s.name);
          progress.done++;
        }
      });
    };
    try {
      const parallel = plan.load.parallel;
      await run([...post.primaryKeys, ...post.uniques, ...post.exclusions], parallel, 'constraint');
      await run(post.indexes, parallel, 'index');
      // Attaching is quick and order matters (a sub-partitioned partition's index first).
      await run(post.attachIndexes, 1, 'attach');
      // Key redesign: new references filled in one statement each, before their foreign keys
      // exist (a check per updated row would cost more than one VALIDATE).
      progress.step = 'new references';
      await run(post.backfills, 1, 'backfill');
      progress.step = 'keys and indexes';
      // Adding foreign keys locks both tables: one at a time avoids lock-order deadlocks.
      await run(post.foreignKeys, 1, 'constraint');
      // Tables loaded at different read points (a holder died during the load) agree only once
      // CDC has caught up: their foreign keys are validated at cutover (validateForeignKeys).
      // DMS reads each table at its own moment: with its CDC they agree only after the drain.
      const consistent = plan.mode !== 'full-load-and-cdc' || (plan.runner !== 'aws' && !(await readPointsDiffer(await lane(0), migration.runId)));
      if (consistent) await run(post.validateForeignKeys, parallel, 'validate');
      // Before CDC: every change it applies must keep the new references right.
      await run(post.triggers, 1, 'trigger');
      // Triggers, rules and row security only now: they would have fired on or filtered the load.
      progress.step = 'triggers, rules, policies, materialized views';
      await applySchemaObjects(await lane(0), tgt, model.objects?.post ?? [], { deferMissing: false });
      await refreshMaterializedViews(await lane(0), tgt, model.objects?.refresh ?? []);
      progress.step = 'sequences';
      const sequences = await carrySequences(await sequenceStates(model.sequences), tgt, await lane(0));
      progress.step = 'analyze';
      const analyzed = await analyzedSinceLoad(await lane(0), migration.runId);
      await inParallel(model.tables.filter((t) => !analyzed.has(qualifiedKey(t))), parallel, async (t, i) => {
        await (await lane(i)).query(`ANALYZE ${qualifiedTable(t.schema, t.name)}`);
      });
      // Last, so that an operator who accepts the orphans (skip) has everything else built.
      if (consistent) await refuseOrphans(await lane(0), tgt, model, plan.mode === 'full-load-and-cdc');
      return {
        primaryKeys: post.primaryKeys.length,
        uniques: post.uniques.length + post.exclusions.length,
        indexes: post.indexes.length,
        foreignKeys: post.foreignKeys.length,
        sequences,
        ms: Date.now() - started,
      };
    } finally {
      await Promise.all(lanes.map((c) => closeQuietly(c)));
    }
  });
}

const ORPHAN_EXAMPLES = 5;

/**
 * Key redesign: child rows whose natural key names no parent keep a NULL reference. That is
 * the source's data, but rarely what the person who asked for a foreign key expects: it pauses
 * for them with the counts and examples.
 */
async function refuseOrphans(c: Client, tgt: PgEndpoint, model: SchemaModel, cdc: boolean): Promise<void> {
  const found: string[] = [];
  let first: string | undefined;
  for (const t of model.tables) {
    for (const ref of t.references ?? []) {
      let r;
      try {
        r = await c.query<{ n: string; examples: string[] }>(orphansQuery(t, ref, ORPHAN_EXAMPLES));
      } catch (err) {
        throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, table: qualifiedKey(t), doing: `looking for orphans of ${ref.name}` });
      }
      const row = r.rows[0];
      if (!row || row.n === '0') continue;
      first ??= qualifiedKey(t);
      const by = ref.on.map(([col]) => col).join(', ');
      found.push(`${row.n} rows of ${qualifiedKey(t)} name no ${qualifiedKey(ref.parent)} by (${by}), e.g. ${row.examples.join(', ')}`);
    }
  }
  if (found.length === 0) return;
  throw ApplicationFailure.create({
    type: FailureType.OrphanRows,
    nonRetryable: true,
    message: `orphan rows: ${found.join('; ')}; their new reference is NULL`,
    details: [
      {
        table: first,
        hint: cdc
          ? 'dbferry skip accepts them (CDC links each one whose parent arrives; validation counts what is left), or add the parents on the target and run dbferry retry'
          : 'add the missing parents (or remove the rows) on the target and run dbferry retry to check again, or accept them with dbferry skip',
      },
    ],
  });
}

/**
 * Pipelined load: the statements that build a table's own keys and indexes, when the loader may
 * build them as soon as its data committed. Not a partitioned table (its keys wait for its
 * partitions) nor one a key redesign touches (its new keys and references are built around the
 * backfills, in the step's order). Per table, not for the whole model: a loader sees a few
 * tables, and a 50,000-table model's statements held for the run would weigh tens of MB.
 */
function ownKeys(model: SchemaModel, key: string): { t: TableModel; constraints: Stmt[]; indexes: Stmt[] } | undefined {
  const t = tablesByKey(model).get(key);
  if (!t || t.partitioned || t.surrogateKey || t.references?.length) return undefined;
  const post = postLoadStatements({ ...model, tables: [t] });
  return { t, constraints: [...post.primaryKeys, ...post.uniques, ...post.exclusions], indexes: post.indexes };
}

/**
 * Pipelined load: builds the primary key, unique and exclusion constraints and indexes of the
 * tables a loader just completed, then ANALYZEs them, on the loader's own connection, while other
 * tables still copy (pgcopydb does the same). The keys-and-indexes step finds them built and
 * skips them. Best effort: whatever fails here (a duplicate key, a lost connection) is left to
 * that step, which reports it and waits for the operator; nothing here fails the load, whose rows
 * are already committed. One connection at a time per table (two loaders may commit a table's
 * last chunks together; a dead worker's backend may still be building). A few statements per
 * task, not per table, besides the builds themselves: a task may hold 100 small tables.
 */
export async function buildLoadedTables(c: Client, runId: string, model: SchemaModel, keys: string[], building: (key: string | undefined) => void): Promise<void> {
  const todo = keys.flatMap((key) => {
    const own = ownKeys(model, key);
    return own ? [{ key, ...own }] : [];
  });
  if (todo.length === 0) return;
  const lockKey = buildLockKey(runId);
  let locked: typeof todo = [];
  try {
    const r = await c.query<{ t: string }>('SELECT t FROM unnest($2::text[]) AS t WHERE pg_try_advisory_lock(hashtext($1), hashtext(t))', [lockKey, todo.map((x) => x.key)]);
    const mine = new Set(r.rows.map((x) => x.t));
    locked = todo.filter((x) => mine.has(x.key));
    if (locked.length === 0) return;
    await c.query(MAINTENANCE_WORK_MEM);
    const built = await builtNames(c, locked.map((x) => x.t));
    const done: TableModel[] = [];
    const started = Date.now();
    for (const { key, t, constraints, indexes } of locked) {
      let doing = '';
      building(key);
      try {
        for (const s of constraints) {
          doing = `creating ${s.name}`;
          if (!built.constraint.has(`${key}\u0000${s.name}`)) await c.query(s.sql);
        }
        for (const s of indexes) {
          doing = `creating ${s.name}`;
          if (!built.index.has(`${key}\u0000${s.name}`)) await c.query(s.sql);
        }
        done.push(t);
      } catch (err) {
        tableKeysDeferred(key, doing, err);
      }
    }
    building(undefined);
    if (done.length === 0) return;
    try {
      // One statement for all of them (the step analyzes what is left).
      await c.query(`ANALYZE ${done.map((t) => qualifiedTable(t.schema, t.name)).join(', ')}`);
    } catch (err) {
      tableKeysDeferred(qualifiedKey(done[0]!), 'analyzing', err);
    }
    tableKeysBuilt(done.map(qualifiedKey), Date.now() - started);
  } catch (err) {
    tableKeysDeferred(todo[0]!.key, 'building keys and indexes', err);
  } finally {
    building(undefined);
    // The loader's connection holds no other session lock (the task's is a transaction lock).
    if (locked.length > 0) await c.query('SELECT pg_advisory_unlock_all()').catch(() => undefined);
  }
}

/** With the table key, the advisory lock that lets one connection at a time build a table's keys and indexes. */
function buildLockKey(runId: string): string {
  return `${runId}:build`;
}

/**
 * The constraints and the indexes on the target (of `tables` only, when given), as `table key
 * NUL name`: one set each, as an index may share a constraint's name (MySQL's foreign keys).
 */
async function builtNames(c: Client, tables?: TableModel[]): Promise<{ constraint: Set<string>; index: Set<string> }> {
  const only = tables ? 'JOIN unnest($1::text[], $2::text[]) AS u(s, n) ON u.s = n.nspname AND u.n = t.relname' : '';
  const r = await c.query<{ kind: 'constraint' | 'index'; t: string; name: string }>(
    `SELECT 'constraint' AS kind, n.nspname || '.' || t.relname AS t, k.conname AS name
       FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace ${only}
     UNION ALL
     SELECT 'index', n.nspname || '.' || t.relname, i.relname
       FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace ${only}`,
    tables ? [tables.map((t) => t.schema), tables.map((t) => t.name)] : [],
  );
  const out = { constraint: new Set<string>(), index: new Set<string>() };
  for (const x of r.rows) out[x.kind].add(`${x.t}\u0000${x.name}`);
  return out;
}

/** Tables whose last ANALYZE came after their last load (the loader built them): the step skips them. */
async function analyzedSinceLoad(c: Client, runId: string): Promise<Set<string>> {
  const r = await c.query<{ table_key: string }>(
    `SELECT l.table_key FROM _dbferry.table_loads l JOIN pg_stat_user_tables s ON s.schemaname || '.' || s.relname = l.table_key
      WHERE l.run_id = $1 GROUP BY l.table_key HAVING max(s.last_analyze) > max(l.loaded_at)`,
    [runId],
  );
  return new Set(r.rows.map((x) => x.table_key));
}

async function readPointsDiffer(c: Client, runId: string): Promise<boolean> {
  const r = await c.query<{ differ: boolean }>(
    'SELECT count(DISTINCT snapshot) > 1 OR count(DISTINCT position) > 1 AS differ FROM _dbferry.table_loads WHERE run_id = $1',
    [runId],
  );
  return r.rows[0]?.differ ?? false;
}

/**
 * At cutover, after CDC drained: the foreign keys the load left unvalidated. Only those the
 * target has and has not validated (mode cdc's target was built some other way).
 */
export async function validateForeignKeys(c: Client, tgt: PgEndpoint, model: SchemaModel): Promise<void> {
  const r = await c.query<{ table_key: string; name: string }>(
    `SELECT n.nspname || '.' || t.relname AS table_key, k.conname AS name
       FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
      WHERE k.contype = 'f' AND NOT k.convalidated`,
  );
  const pending = new Set(r.rows.map((x) => `${x.table_key}\u0000${x.name}`));
  for (const s of postLoadStatements(model).validateForeignKeys.filter((x) => pending.has(`${x.table}\u0000${x.name}`))) {
    try {
      await c.query(s.sql);
    } catch (err) {
      throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, table: s.table, doing: `validating ${s.name}` });
    }
  }
}

/**
 * Opens a transaction, waits for the table's build lock and, for a constraint, says whether it
 * exists: one simple query (its values are literals, as a simple query takes no parameters).
 */
async function lockAndLook(c: Client, lockKey: string, s: Stmt, constraintOf: TableModel | undefined): Promise<boolean> {
  const lock = `BEGIN; SELECT pg_advisory_xact_lock(hashtext(${quoteLiteral(lockKey)}), hashtext(${quoteLiteral(s.table)}))`;
  if (!constraintOf) {
    await c.query(lock);
    return false;
  }
  const results = (await c.query(
    `${lock};
     SELECT 1 FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
      WHERE n.nspname = ${quoteLiteral(constraintOf.schema)} AND t.relname = ${quoteLiteral(constraintOf.name)} AND k.conname = ${quoteLiteral(s.name)}`,
  )) as unknown as QueryResult[];
  return (results[results.length - 1]?.rows.length ?? 0) > 0;
}

/**
 * Sequences get the source's state as it is now (`fresh`; sequences are not transactional, so
 * "now" is at least the snapshot's), raised to the loaded maximum of the owning column when the data
 * is ahead of it, so the next value never collides with a loaded row.
 */
export async function carrySequences(fresh: SequenceModel[], tgt: PgEndpoint, target: Client): Promise<number> {
  let carried = 0;
  for (const s of fresh) {
    let seq = s;
    if (s.ownedBy && BigInt(s.increment) > 0n) {
      const r = await target.query<{ m: string | null }>(
        `SELECT max(${quoteIdent(s.ownedBy.column)})::text AS m FROM ${qualifiedTable(s.ownedBy.table.schema, s.ownedBy.table.name)}`,
      );
      const max = r.rows[0]?.m;
      if (max != null && /^-?\d+$/.test(max)) {
        const last = s.lastValue === null ? undefined : BigInt(s.lastValue);
        const next = last === undefined ? BigInt(s.start) : s.isCalled ? last + BigInt(s.increment) : last;
        if (next <= BigInt(max)) seq = { ...s, lastValue: max, isCalled: true };
      }
    }
    const sql = sequenceSetvalStatement(seq);
    if (!sql) continue;
    try {
      await target.query(sql);
    } catch (err) {
      throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, doing: `setting sequence ${s.schema}.${s.name}` });
    }
    carried++;
  }
  return carried;
}
