import { applySchemaObjects, refreshMaterializedViews } from './schema-objects';
import type { Client } from 'pg';
import type { ActivityInput, BuildResult } from '../../plan/migration-types';
import { qualifiedKey, type SchemaModel, type SequenceModel, type TableModel } from '../../plan/schema-model';
import { inParallel } from '../../plan/in-parallel';
import { withHeartbeat } from '../heartbeat';
import { closeQuietly, connect, type PgEndpoint } from '../pg/connection';
import { postLoadStatements, sequenceSetvalStatement } from './ddl';
import { qualifiedTable, quoteIdent } from '../../plan/sql-names';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import { orphansQuery } from './reference-ddl';
import { toFailure } from '../pg/errors';
import { loadModel } from './model';

type Stmt = { table: string; name: string; sql: string };

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
        await c.query("SET maintenance_work_mem = '256MB'");
      }
      return lanes[i]!;
    };
    const run = async (stmts: Stmt[], parallel: number, kind: 'constraint' | 'index' | 'validate' | 'backfill' | 'trigger') => {
      progress.total += stmts.length;
      await inParallel(stmts, parallel, async (s, i) => {
        const c = await lane(i);
        progress.running.push(s.name);
        try {
          if (kind === 'constraint' && (await constraintExists(c, s, byKey))) return;
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
          const doing = { validate: 'validating', backfill: 'filling', constraint: 'creating', index: 'creating', trigger: 'creating trigger' }[kind];
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
      await run(post.attachIndexes, 1, 'index');
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
      await inParallel(model.tables, parallel, async (t, i) => {
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

async function constraintExists(c: Client, s: Stmt, tables: Map<string, TableModel>): Promise<boolean> {
  const t = tables.get(s.table);
  if (!t) return false;
  const r = await c.query(
    `SELECT 1 FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
      WHERE n.nspname = $1 AND t.relname = $2 AND k.conname = $3`,
    [t.schema, t.name, s.name],
  );
  return r.rows.length > 0;
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
