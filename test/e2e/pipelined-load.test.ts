import type { Client as PgClient } from 'pg';
import { Client as PgConnection } from 'pg';
import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { expectSameTables, schemaObjects } from '../support/compare';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';

/**
 * Pipelined load: a table's keys and indexes are built by its loader as soon as its rows are
 * committed, while other tables still copy. The test holds a lock on the target's largest table
 * so its chunks cannot load, sees the other tables' keys built meanwhile, and SIGKILLs the worker
 * in the middle of one of those builds (the server goes on building on the dead worker's backend).
 * The migration must still end with every table equal and every key and index as on the source.
 */
describe('pipelined load: keys and indexes built while other tables copy, a worker killed mid-build', () => {
  const sourceDb = uniqueName('pipe');
  const targetDb = uniqueName('pipe_copy');
  const name = uniqueName('pipe').replace(/_/g, '-');
  const queue = `q-${name}`;
  const secrets = { SRC_URL: serverUrl('source', sourceDb), TGT_URL: serverUrl('target', targetDb), TGT_V: serverUrl('target', `${targetDb}_v`) };
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    const url = await createDatabase('source', sourceDb);
    await withClient(url, async (c) => {
      await c.query(`
        CREATE TABLE big (id bigint PRIMARY KEY, v text NOT NULL);
        INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 60000) g;
        CREATE INDEX big_v ON big (v);
        -- Slow enough to build (expression indexes over 400,000 rows) that the test sees it running.
        CREATE TABLE "Mid Table" (id int PRIMARY KEY, payload text NOT NULL CHECK (payload <> ''));
        INSERT INTO "Mid Table" SELECT g, repeat(md5(g::text), 2) FROM generate_series(1, 400000) g;
        CREATE INDEX "Mid By Hash" ON "Mid Table" (md5(payload || 'a'));
        CREATE INDEX mid_by_hash_2 ON "Mid Table" (md5(payload || 'b'), id);
        CREATE UNIQUE INDEX mid_unique ON "Mid Table" (payload, id);
        CREATE TABLE "Small ""Keys""" ("Key" int PRIMARY KEY, "Order" text UNIQUE);
        INSERT INTO "Small ""Keys""" SELECT g, 'o' || g FROM generate_series(1, 1000) g;
        CREATE TABLE child (id int PRIMARY KEY, small_key int REFERENCES "Small ""Keys""" ("Key"));
        INSERT INTO child SELECT g, g FROM generate_series(1, 1000) g;
        -- Copied (and summed) as text: an enum's binary form names its OID.
        CREATE TYPE mood AS ENUM ('calm', 'busy');
        CREATE TABLE moods (id int PRIMARY KEY, m mood, note text);
        INSERT INTO moods SELECT g, CASE WHEN g % 3 = 0 THEN 'busy' ELSE 'calm' END::mood, 'n' || g FROM generate_series(1, 3000) g;
        -- Not copied whole (the target computes the generated column): summed on the source by a query.
        CREATE TABLE generated (id int PRIMARY KEY, a int, twice int GENERATED ALWAYS AS (a * 2) STORED);
        INSERT INTO generated (id, a) SELECT g, g FROM generate_series(1, 2000) g;
        ANALYZE;`);
    });
    workers.push(await startWorker(cliEnv(queue, secrets)));
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
  });

  it('builds the other tables\' keys while the largest one cannot load, and ends equal after a kill mid-build', async () => {
    const planFile = writePlan(`
name: ${name}
mode: full-load
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
load: { parallel: 3, chunkRows: 25000, pipelined: true }
`);
    const run = dbferry(['start', planFile, '--wait'], cliEnv(queue));
    const tgt = serverUrl('target', targetDb);
    const blocker = new PgConnection({ connectionString: tgt });
    const poll = new PgConnection({ connectionString: tgt });
    try {
      // As soon as create-tables made it: nothing can load into big while the test holds SHARE.
      const deadline = Date.now() + 120_000;
      for (;;) {
        if (Date.now() > deadline) throw new Error('the target table big never appeared');
        const ok = await withClient(tgt, (c) => c.query("SELECT to_regclass('public.big') IS NOT NULL AS ok")).catch(() => undefined);
        if (ok?.rows[0]?.ok) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      await blocker.connect();
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE big IN SHARE MODE');
      await poll.connect();

      // The loader that committed "Mid Table" builds its keys while big waits: kill it mid-build.
      let building: string | undefined;
      while (!building) {
        if (Date.now() > deadline) throw new Error(`no key of "Mid Table" was ever seen building\n${workers[0]!.output().slice(-3000)}`);
        const r = await poll.query<{ t: string }>(`SELECT relid::regclass::text AS t FROM pg_stat_progress_create_index WHERE datname = current_database()`);
        building = r.rows.map((x) => x.t).find((t) => t === '"Mid Table"');
        if (!building) await new Promise((r) => setTimeout(r, 10));
      }
      const bigLoaded = await poll.query<{ n: number }>("SELECT count(*)::int AS n FROM _dbferry.table_loads WHERE table_key = 'public.big'");
      expect(bigLoaded.rows[0]!.n).toBe(0); // big is still waiting: this build overlaps the load
      await workers[0]!.stop('SIGKILL');
      workers.push(await startWorker(cliEnv(queue, secrets)));
      await new Promise((r) => setTimeout(r, 1_000));
      await blocker.query('COMMIT');

      const res = await run;
      if (res.code !== 0) throw new Error(`exit ${res.code}\n${res.stdout}\n${res.stderr}\n${workers[1]!.output().slice(-4000)}`);
      expect(res.stdout).toContain('validation: every table equal');
      // The second worker's loaders built what the kill left (the small tables of the killed
      // task, on its retry) and big's once its last chunk committed.
      expect(workers[1]!.output()).toMatch(/built the keys and indexes of [^\n]*public\.Small "Keys"/);
      expect(workers[1]!.output()).toMatch(/built the keys and indexes of public\.big in/);

      const src = serverUrl('source', sourceDb);
      await expectSameTables(src, tgt);
      const [srcObjects, tgtObjects] = await Promise.all([schemaObjects(src), schemaObjects(tgt)]);
      expect(tgtObjects).toEqual(srcObjects);
      // Each table analyzed after its last load (by its loader or the step): the planner has statistics.
      const stale = await poll.query<{ t: string }>(
        `SELECT l.table_key AS t FROM _dbferry.table_loads l JOIN pg_stat_user_tables s ON s.schemaname || '.' || s.relname = l.table_key
          GROUP BY l.table_key HAVING max(s.last_analyze) IS NULL OR max(s.last_analyze) < max(l.loaded_at)`,
      );
      expect(stale.rows).toEqual([]);
    } finally {
      await endQuietly(blocker);
      await endQuietly(poll);
    }
  }, 300_000);

  it('validate.readSourceOnce: the loaders sum the rows they copy, and validation still says "different" for one changed value', async () => {
    const db = `${targetDb}_v`;
    const tgt = secrets.TGT_V;
    // The target refuses CREATE INDEX, so the migration pauses before validation and the test
    // can change a value on it after the load.
    await createDatabase('target', db);
    await withClient(tgt, (c) =>
      c.query(`
        CREATE FUNCTION refuse_index() RETURNS event_trigger LANGUAGE plpgsql AS $f$ BEGIN RAISE EXCEPTION 'no index today'; END $f$;
        CREATE EVENT TRIGGER refuse_index ON ddl_command_start WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION refuse_index();`),
    );
    const env = cliEnv(queue);
    const plan = writePlan(`
name: ${name}-v
mode: full-load
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_V }
load: { parallel: 2 }
validate: { readSourceOnce: true }
`);
    workers.push(await startWorker(cliEnv(queue, secrets)));
    const paused = await dbferry(['start', plan, '--wait', '--json'], env);
    expect({ code: paused.code, step: JSON.parse(paused.stdout).failure?.step }).toEqual({ code: 3, step: 'build-indexes' });
    // Every loaded table was summed on its way except the one with a generated column.
    const methods = await withClient(tgt, (c) => c.query<{ table_key: string; checksum_method: string }>('SELECT table_key, checksum_method FROM _dbferry.table_loads ORDER BY 1'));
    expect(methods.rows.filter((r) => r.checksum_method !== 'copy-hash').map((r) => [r.table_key, r.checksum_method])).toEqual([['public.generated', 'record-hash']]);
    // One value changed in a table copied in binary and one in a table copied as text.
    await withClient(tgt, (c) =>
      c.query(`DROP EVENT TRIGGER refuse_index;
               UPDATE "Mid Table" SET payload = payload || 'x' WHERE id = 123;
               UPDATE moods SET m = 'busy' WHERE id = 1;`),
    );
    expect((await dbferry(['retry', `${name}-v`], env)).code).toBe(0);
    const different = await dbferry(['start', plan, '--wait', '--json'], env);
    expect(different.code).toBe(3);
    const status = JSON.parse(different.stdout);
    expect(status.failure).toMatchObject({ step: 'validate', type: 'ValidationMismatch' });
    const differing = status.tables.filter((x: { validation: string }) => x.validation === 'different').map((x: { name: string }) => x.name);
    expect(differing.sort()).toEqual(['public.Mid Table', 'public.moods']);
    expect((await dbferry(['abort', `${name}-v`], env)).code).toBe(0);
    await dropDatabase('target', db);
  }, 300_000);
});

async function endQuietly(c: PgClient): Promise<void> {
  await c.end().catch(() => undefined);
}
