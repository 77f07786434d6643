import { cliEnv, dbferry, startWorker, temporalClient, writePlan, type WorkerProcess } from '../support/cli';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';
import { migrationHistories } from '../support/histories';

const TABLES = 10_000;
const PER_BATCH = 1_000; // tables per CREATE batch: one transaction cannot lock 10,000 new tables

/**
 * Every table of the schema as one fingerprint: per table its name, row count and the md5 of
 * its rows, computed server-side in one statement (10,000 round trips would dominate the test).
 */
async function schemaFingerprint(url: string): Promise<{ tables: number; rows: number; digest: string }> {
  return withClient(url, async (c) => {
    const r = await c.query(`
      SELECT count(*)::int AS tables, sum(n)::int AS rows, md5(string_agg(t || ':' || n || ':' || h, ',' ORDER BY t)) AS digest
        FROM (SELECT format('%I.%I', schemaname, tablename) AS t,
                     (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', schemaname, tablename), false, true, '')))[1]::text::int AS n,
                     (xpath('/row/h/text()', query_to_xml(format('SELECT md5(string_agg(x::text, '','' ORDER BY x::text)) AS h FROM %I.%I x', schemaname, tablename), false, true, '')))[1]::text AS h
                FROM pg_tables WHERE schemaname IN ('many', 'Many More')) s`);
    return r.rows[0];
  });
}

/** The size of every payload in a history event (activity inputs and results, memos, queries' answers). */
function payloadSizes(event: unknown): number[] {
  const out: number[] = [];
  const walk = (o: unknown) => {
    if (!o || typeof o !== 'object') return;
    const p = o as { data?: Uint8Array; metadata?: unknown };
    if (p.data instanceof Uint8Array && p.metadata) out.push(p.data.length);
    for (const v of Object.values(o)) walk(v);
  };
  walk(event);
  return out;
}

/** A schema of 10,000 small tables migrates completely, and no workflow history nears Temporal's limits. */
describe('a schema of 10,000 tables', () => {
  const sourceDb = uniqueName('many');
  const targetDb = uniqueName('many_copy');
  const name = uniqueName('many').replace(/_/g, '-');
  const queue = `q-${name}`;
  let worker: WorkerProcess;

  beforeAll(async () => {
    const url = await createDatabase('source', sourceDb);
    await withClient(url, async (c) => {
      await c.query('CREATE SCHEMA many; CREATE SCHEMA "Many More"');
      for (let from = 0; from < TABLES; from += PER_BATCH) {
        const sql: string[] = [];
        for (let i = from; i < from + PER_BATCH; i++) {
          const t = i % 2 === 0 ? `many.t${i}` : `"Many More"."T ${i}"`;
          sql.push(`CREATE TABLE ${t} (id int PRIMARY KEY, v text); INSERT INTO ${t} SELECT g, 'row ' || g || ' of ${i}' FROM generate_series(1, ${1 + (i % 3)}) g;`);
        }
        await c.query(sql.join('\n'));
      }
    });
    worker = await startWorker(cliEnv(queue, { SRC_URL: url, TGT_URL: serverUrl('target', targetDb) }));
  }, 300_000);

  afterAll(async () => {
    await worker?.stop();
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
  }, 120_000);

  it('migrates every table and row; every workflow history stays under 10,000 events', async () => {
    const planFile = writePlan(`
name: ${name}
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
load: { parallel: 4 }
`);
    const res = await dbferry(['start', planFile, '--wait'], cliEnv(queue));
    if (res.code !== 0) throw new Error(`exit ${res.code}\n${res.stdout}\n${res.stderr}\n${worker.output().slice(-3000)}`);
    expect(res.stdout).toContain('validation: every table equal');
    expect(res.stdout).toContain(`${TABLES} tables`);

    const [src, tgt] = await Promise.all([schemaFingerprint(serverUrl('source', sourceDb)), schemaFingerprint(serverUrl('target', targetDb))]);
    expect(src.tables).toBe(TABLES);
    expect(tgt).toEqual(src);

    const { client, close } = await temporalClient();
    try {
      const histories = await migrationHistories(client, name);
      expect(histories.length).toBeGreaterThanOrEqual(2); // the migration and its load children
      for (const h of histories) expect({ workflow: h.workflowId, events: h.events.length < 10_000 }).toEqual({ workflow: h.workflowId, events: true });
      // No payload grows with the number of tables: results name at most 200 of them (at about
      // 100 bytes a table, 10,000 tables would make a 1 MB result; 50,000 would pass Temporal's 2 MB).
      const payloads = histories.flatMap((h) => h.events.flatMap((e) => payloadSizes(e)));
      expect(Math.max(...payloads)).toBeLessThan(100 * 1024);
    } finally {
      await close();
    }

    // status with no per-table flood: a bounded list plus totals over all tables.
    const status = await dbferry(['status', name, '--json'], cliEnv(queue));
    const s = JSON.parse(status.stdout);
    expect(s.phase).toBe('completed');
    expect(s.totals).toMatchObject({ tables: TABLES, equal: TABLES, different: 0 });
    // Every table's validation is on the target, where the step's result names 200.
    const kept = await withClient(serverUrl('target', targetDb), (c) => c.query<{ n: number; equal: number }>('SELECT count(*)::int AS n, count(*) FILTER (WHERE equal)::int AS equal FROM _dbferry.table_validations'));
    expect(kept.rows[0]).toEqual({ n: TABLES, equal: TABLES });
  }, 1_200_000);
});
