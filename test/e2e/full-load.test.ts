import { migrationWorkflowId } from '../../workflows/search-attributes';
import { createSampleDatabase } from '../../local/sample-data';
import { cliEnv, dbferry, startWorker, temporalClient, writePlan, type WorkerProcess } from '../support/cli';
import { nextSequenceValues, schemaObjects, tableFingerprint, userTables } from '../support/compare';
import { dropDatabase, requiredEnv, serverUrl, uniqueName, withClient } from '../support/databases';
import { migrationHistories, readableHistory } from '../support/histories';

/**
 * The product as a user runs it: a plan file, `dbferry start --wait` through the CLI, a worker
 * process that alone holds the database passwords, a real Temporal dev server, real PostgreSQL.
 */
describe('full-load migration through the CLI', () => {
  const sourceDb = uniqueName('shop');
  const targetDb = uniqueName('shop_copy');
  const name = uniqueName('e2e').replace(/_/g, '-');
  const queue = `q-${name}`;
  let worker: WorkerProcess;
  let planFile: string;
  const secrets = { SRC_URL: serverUrl('source', sourceDb), TGT_URL: serverUrl('target', targetDb) };

  beforeAll(async () => {
    await createSampleDatabase(serverUrl('source'), sourceDb, 6000);
    worker = await startWorker(cliEnv(queue, secrets));
    planFile = writePlan(`
name: ${name}
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
load: { parallel: 3, chunkRows: 1000 }
`);
  });

  afterAll(async () => {
    await worker?.stop();
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
  });

  it('check runs preflight on the workers: prints the target schema, exit 1 on a blocking finding', async () => {
    const ok = await dbferry(['check', planFile], cliEnv(queue));
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('tables selected: 5');
    // The estimate for these tables' size at the measured rate (plan/capacity.ts).
    expect(ok.stdout).toMatch(/^estimate: about \d+(\.\d)? (ms|s|min \d+ s) for \d+(\.\d)? (B|kB|MB) in 5 tables, at the rate measured on one worker/m);
    const json = JSON.parse((await dbferry(['check', planFile, '--json'], cliEnv(queue))).stdout);
    expect(json.selected.tables).toBe(5);
    expect(json.estimate).toMatchObject({ tables: 5, bytes: json.selected.estimatedBytes, seconds: expect.any(Number) });
    expect(Number(json.selected.estimatedBytes)).toBeGreaterThan(0);
    expect(ok.stdout).toMatch(/CREATE TABLE public\.customers|CREATE TABLE "public"\."customers"/);
    const none = writePlan(`name: ${name}-none\nsource: { engine: postgres, url: env:SRC_URL }\ntarget: { engine: postgres, url: env:TGT_URL }\ntables: { include: ["nosuchschema.%"] }\n`);
    const blocked = await dbferry(['check', none, '--json'], cliEnv(queue));
    expect(blocked.code).toBe(1);
    expect(JSON.parse(blocked.stdout).findings).toEqual([expect.objectContaining({ severity: 'blocking', code: 'no-tables' })]);
  });

  it('completes, and every target table equals its source with keys, indexes, checks and sequences', async () => {
    const res = await dbferry(['start', planFile, '--wait'], cliEnv(queue));
    expect(res.stderr).toContain(`started migration ${name}`);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('validation: every table equal');

    const src = serverUrl('source', sourceDb);
    const tgt = serverUrl('target', targetDb);
    const tables = await userTables(src);
    expect(tables).toHaveLength(5);
    expect(await userTables(tgt)).toEqual(tables);
    for (const t of tables) {
      const [a, b] = await Promise.all([tableFingerprint(src, t), tableFingerprint(tgt, t)]);
      expect({ table: t, ...b }).toEqual({ table: t, ...a });
      expect(Number(a.rows)).toBeGreaterThan(0);
    }
    const [srcObjects, tgtObjects] = await Promise.all([schemaObjects(src), schemaObjects(tgt)]);
    expect(tgtObjects).toEqual(srcObjects);
    expect(srcObjects.constraints.some((c) => c.includes('FOREIGN KEY'))).toBe(true);
    expect(srcObjects.constraints.some((c) => c.includes('CHECK'))).toBe(true);
    expect(srcObjects.indexes.some((i) => i.includes('WHERE'))).toBe(true);
    expect(await nextSequenceValues(tgt)).toEqual(await nextSequenceValues(src));

    // chunkRows 1000: order_items (12,000 rows) was split into primary-key ranges, one ledger row each.
    const chunks = await withClient(tgt, (c) =>
      c.query("SELECT count(*)::int AS n, sum(rows)::text AS rows FROM _dbferry.table_loads WHERE table_key = 'public.order_items' AND chunk > 0"),
    );
    expect(chunks.rows[0].n).toBeGreaterThanOrEqual(10);
    expect(chunks.rows[0].rows).toBe('12000');
  });

  it('reports the completed migration in status --json and list, with every table validated', async () => {
    const res = await dbferry(['status', name, '--json'], cliEnv(queue));
    expect(res.code).toBe(0);
    const status = JSON.parse(res.stdout);
    expect(status.phase).toBe('completed');
    expect(status.tables).toHaveLength(5);
    for (const t of status.tables) {
      expect(t.validation).toBe('equal');
      expect(Number(t.fullLoadRows)).toBeGreaterThan(0);
    }
    expect(status.steps.map((s: { status: string }) => s.status)).toEqual(Array(6).fill('Succeeded'));
    const list = await dbferry(['list', '--json'], cliEnv(queue));
    expect(JSON.parse(list.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ name, phase: 'completed' })]));
  });

  it('does not start a second migration under the same name', async () => {
    const res = await dbferry(['start', planFile], cliEnv(queue));
    expect(res.code).toBe(0);
    expect(res.stderr).toContain('already completed');
    const { client, close } = await temporalClient();
    try {
      const runs = [];
      for await (const w of client.workflow.list({ query: `WorkflowId = '${migrationWorkflowId(name)}'` })) runs.push(w.runId);
      expect(runs).toHaveLength(1);
    } finally {
      await close();
    }
  });

  it('keeps every password out of workflow history and out of the worker log', async () => {
    const { client, close } = await temporalClient();
    try {
      const histories = await migrationHistories(client, name);
      expect(histories.length).toBeGreaterThan(1); // the load's child workflows carry the plan too
      const text = readableHistory(histories);
      expect(text).toContain('env:SRC_URL'); // the payloads were decoded: the plan's reference is there
      expect(text).toContain('validation');
      for (const pw of [requiredEnv('DBFERRY_TEST_SOURCE_PASSWORD'), requiredEnv('DBFERRY_TEST_TARGET_PASSWORD')]) {
        expect(text).not.toContain(pw);
        expect(worker.output()).not.toContain(pw);
      }
    } finally {
      await close();
    }
  });

  it('answers unknown names with exit 4 and a bad plan with exit 2 naming the field', async () => {
    const unknown = await dbferry(['status', 'no-such-migration'], cliEnv(queue));
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toContain('no migration named no-such-migration');
    const bad = writePlan(`name: Bad_Name\nsource: { engine: postgres, url: env:X }\ntarget: { engine: postgres, url: env:Y }\nload: { parallel: 0 }\n`);
    const res = await dbferry(['start', bad], cliEnv(queue));
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/name: /);
    expect(res.stderr).toMatch(/load\.parallel: .*1 to 64/);
    expect(res.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('says which Temporal address it cannot reach (exit 6)', async () => {
    const res = await dbferry(['status', name], { ...cliEnv(queue), TEMPORAL_ADDRESS: '127.0.0.1:1' });
    expect(res.code).toBe(6);
    expect(res.stderr).toContain('cannot reach Temporal at 127.0.0.1:1');
  });
});
