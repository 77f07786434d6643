import { migrationWorkflowId } from '../../workflows/search-attributes';
import { cliEnv, dbferry, startWorker, temporalClient, writePlan, type WorkerProcess } from '../support/cli';
import { expectSameTables } from '../support/compare';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';
import { migrationHistories } from '../support/histories';

/**
 * Two workers share one load; the worker holding the load's snapshot is SIGKILLed mid-load
 * (with whatever loader tasks it was running). The other worker must finish the load under a
 * new snapshot generation, and every table must equal its source with no row twice or missing.
 */
describe('a load spread over two workers survives one of them killed', () => {
  const sourceDb = uniqueName('scale');
  const targetDb = uniqueName('scale_copy');
  const name = uniqueName('kill').replace(/_/g, '-');
  const queue = `q-${name}`;
  const secrets = { SRC_URL: serverUrl('source', sourceDb), TGT_URL: serverUrl('target', targetDb) };
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    const url = await createDatabase('source', sourceDb);
    await withClient(url, async (c) => {
      await c.query(`
        CREATE TABLE keyed (id bigint PRIMARY KEY, payload text NOT NULL);
        INSERT INTO keyed SELECT g, repeat(md5(g::text), 5) FROM generate_series(1, 400000) g;
        CREATE TABLE "No Key" (n int, label text);
        INSERT INTO "No Key" SELECT g % 1000, repeat(md5(g::text), 3) FROM generate_series(1, 150000) g;
        -- Sampled boundaries over a composite key whose numeric order differs from its text order.
        CREATE TABLE "Composite Key" (tenant int, code text, v int, PRIMARY KEY (tenant, code));
        INSERT INTO "Composite Key" SELECT g % 997, 'c' || (g / 997), g FROM generate_series(1, 100000) g;
        CREATE TABLE small_a (id int PRIMARY KEY, v text);
        INSERT INTO small_a SELECT g, 'a' || g FROM generate_series(1, 500) g;
        CREATE TABLE small_b (id int PRIMARY KEY, a int REFERENCES small_a (id));
        INSERT INTO small_b SELECT g, g FROM generate_series(1, 500) g;
        ANALYZE;`);
    });
    for (let i = 0; i < 2; i++) workers.push(await startWorker(cliEnv(queue, secrets)));
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
  });

  it('completes with every table equal, under a second snapshot generation, both workers having loaded', async () => {
    const planFile = writePlan(`
name: ${name}
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
load: { parallel: 3, chunkRows: 25000 }
`);
    const run = dbferry(['start', planFile, '--wait'], cliEnv(queue));
    // `dbferry watch` follows it from the start (it waits for the migration to appear).
    await new Promise((r) => setTimeout(r, 1_000));
    const watching = dbferry(['watch', name, '--json', '--interval', '300'], cliEnv(queue));
    const { client, close } = await temporalClient();
    try {
      // Mid-load: a few chunks committed, most not. Kill the worker that holds the snapshot.
      const tgt = serverUrl('target', targetDb);
      const deadline = Date.now() + 120_000;
      let killed: WorkerProcess | undefined;
      while (!killed) {
        if (Date.now() > deadline) throw new Error('the load never got going');
        const d = await client.workflow.getHandle(migrationWorkflowId(name)).describe().catch(() => undefined); // not started yet
        const holder = d?.raw.pendingActivities?.find((a) => a.activityType?.name === 'holdSnapshot')?.lastWorkerIdentity ?? '';
        // Mid-load, once the holder's worker has committed a chunk of its own (so both workers load).
        const done = await withClient(tgt, (c) =>
          c.query<{ n: number; mine: number; workers: number }>(
            `SELECT count(*) FILTER (WHERE table_key = 'public.keyed')::int AS n, count(*) FILTER (WHERE worker = $1)::int AS mine,
                    count(DISTINCT worker)::int AS workers FROM _dbferry.table_loads`,
            [holder],
          ),
        ).catch(() => undefined);
        // Both workers have loaded (the ledger names each chunk's worker): they share the load.
        if ((done?.rows[0]?.n ?? 0) >= 2 && (done?.rows[0]?.mine ?? 0) >= 1 && (done?.rows[0]?.workers ?? 0) >= 2) {
          const pid = Number(holder.split('@')[0]);
          killed = workers.find((w) => w.child.pid === pid);
          if (!killed) throw new Error(`no worker holds the snapshot (holder identity ${holder})`);
          const before = await withClient(tgt, (c) =>
            c.query(`SELECT (SELECT count(*) FROM _dbferry.table_loads)::int AS done,
                            (SELECT count(*) FROM _dbferry.load_tasks, jsonb_array_elements(units))::int AS planned`),
          );
          expect(before.rows[0].done).toBeLessThan(before.rows[0].planned - 3); // really mid-load
          await killed.stop('SIGKILL');
        }
        await new Promise((r) => setTimeout(r, 50));
      }

      const res = await run;
      // watch ended with the migration, and showed chunks loading with their rate.
      const watched = await watching;
      expect(watched.code).toBe(0);
      const frames = watched.stdout.trim().split('\n').map((l) => JSON.parse(l));
      expect(frames.at(-1)).toMatchObject({ phase: 'completed' });
      expect(frames.some((f: { phase: string }) => f.phase === 'full-load')).toBe(true);
      // Loader heartbeats reach the server every 5 s at most: a chunk of a second shows rarely.
      for (const l of frames.flatMap((f: { loading: Array<{ percent: number }> }) => f.loading)) expect(l.percent).toBeGreaterThanOrEqual(0);
      expect(frames.at(-1).tables).toEqual({ total: 5, loaded: 5 });
      if (res.code !== 0) {
        const dbg = await withClient(tgt, async (c) => {
          const l = await c.query("SELECT table_key, chunk, rows, snapshot, loaded_at FROM _dbferry.table_loads ORDER BY 1, 2");
          const t = await c.query("SELECT task, units FROM _dbferry.load_tasks ORDER BY 1");
          const s = await c.query("SELECT * FROM _dbferry.snapshots");
          const k = await c.query("SELECT min(id), max(id), count(*) FROM keyed");
          return JSON.stringify({ l: l.rows, t: t.rows, s: s.rows, k: k.rows }, null, 1);
        });
        console.log(dbg);
      }
      if (res.code !== 0) throw new Error(`exit ${res.code}\n${res.stdout}\n${res.stderr}\n${workers.map((w) => w.output().slice(-2000)).join('\n')}`);
      expect(res.stdout).toContain('validation: every table equal');

      // The test's own equality: count + digest of every column, and no key twice.
      const src = serverUrl('source', sourceDb);
      await expectSameTables(src, tgt);
      const dup = await withClient(tgt, (c) => c.query('SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM keyed'));
      expect(dup.rows[0]).toEqual({ n: 400000, d: 400000 });
      const dup2 = await withClient(tgt, (c) => c.query('SELECT count(*)::int AS n, count(DISTINCT (tenant, code))::int AS d FROM "Composite Key"'));
      expect(dup2.rows[0]).toEqual({ n: 100000, d: 100000 });

      // Split into 10+ key ranges; the holder's death started a second snapshot generation.
      await withClient(tgt, async (c) => {
        const chunks = await c.query("SELECT count(*)::int AS n, max(rows)::int AS biggest FROM _dbferry.table_loads WHERE table_key = 'public.keyed' AND chunk > 0");
        expect(chunks.rows[0].n).toBeGreaterThanOrEqual(10);
        expect(chunks.rows[0].biggest).toBeLessThanOrEqual(2 * 25000); // even ranges, not one huge chunk
        const composite = await c.query(`SELECT count(*)::int AS n, max(rows)::int AS biggest FROM _dbferry.table_loads WHERE table_key = 'public.Composite Key'`);
        expect(composite.rows[0].n).toBeGreaterThanOrEqual(3);
        expect(composite.rows[0].biggest).toBeLessThanOrEqual(3 * 25000);
        const nokey = await c.query(`SELECT count(*)::int AS n FROM _dbferry.load_tasks, jsonb_array_elements(units) u
                                      WHERE u->>'table' = 'public.No Key' AND u->'range'->>'kind' = 'pages'`);
        expect(nokey.rows[0].n).toBeGreaterThanOrEqual(2);
        const gens = await c.query('SELECT generation, position FROM _dbferry.snapshots ORDER BY generation');
        expect(gens.rows.length).toBeGreaterThanOrEqual(2);
      });

      // Each chunked table ends under one snapshot (full-load: a mix is reloaded); no history came near Temporal's limits.
      const mixed = await withClient(tgt, (c) => c.query('SELECT table_key FROM _dbferry.table_loads GROUP BY table_key HAVING count(DISTINCT snapshot) > 1'));
      expect(mixed.rows).toEqual([]);
      for (const h of await migrationHistories(client, name)) expect(h.events.length).toBeLessThan(10_000);
      expect(killed).toBeDefined();
    } finally {
      await close();
    }
  }, 300_000);
});
