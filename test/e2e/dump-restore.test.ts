import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSampleDatabase } from '../../local/sample-data';
import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { expectSameTables, nextSequenceValues, schemaObjects, tableFingerprint, userTables } from '../support/compare';
import { createDatabase, dropDatabase, plantCheckOnCreate, requiredEnv, serverUrl, uniqueName, withClient } from '../support/databases';

const HOSTILE = '"Dump Schema"."Dump ""Me"" Table"';
const HOSTILE_KEY = 'Dump Schema.Dump "Me" Table';
/** Excluded by the plan; a -t pattern that were not quoted (`.`, `?` wildcards) would match it too. */
const DECOY = '"Dump Schema"."DumpXMeX Table"';

/**
 * Mode dump-restore as a user runs it: pg_dump / pg_restore driven by a worker, the real
 * Temporal dev server and PostgreSQL, the CLI. The test checks equality itself (count and
 * digest of every row), plus keys, indexes, sequences; and that a table in the way, or a
 * restore the target refuses, pauses for the operator and a retry then completes cleanly.
 */
describe('dump-restore migration through the CLI', () => {
  const sourceDb = uniqueName('drsrc');
  const hostileDb = uniqueName('drhostile');
  const targetDbs = [uniqueName('drtgt'), uniqueName('drtgt'), uniqueName('drtgt'), uniqueName('drtgt')];
  const names = ['dr', 'drc', 'drr', 'drh'].map((p) => uniqueName(p).replace(/_/g, '-'));
  const queue = `q-${names[0]}`;
  const dumpDir = mkdtempSync(join(tmpdir(), 'dbferry-e2e-dumps-'));
  const secrets = {
    SRC_URL: serverUrl('source', sourceDb),
    TGT1_URL: serverUrl('target', targetDbs[0]!),
    TGT2_URL: serverUrl('target', targetDbs[1]!),
    TGT3_URL: serverUrl('target', targetDbs[2]!),
    SRC4_URL: serverUrl('source', hostileDb),
    TGT4_URL: serverUrl('target', targetDbs[3]!),
  };
  let worker: WorkerProcess;
  const plan = (i: number, createDatabase = true) =>
    writePlan(`
name: ${names[i]}
mode: dump-restore
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT${i + 1}_URL, createDatabase: ${createDatabase} }
tables:
  exclude: ['${DECOY}']
load: { parallel: 2 }
`);
  const status = async (name: string) => JSON.parse((await dbferry(['status', name, '--json'], cliEnv(queue))).stdout);
  const source = serverUrl('source', sourceDb);

  /** Every selected table equal by the test's own count and digest; the decoy was left out. */
  async function expectEqualTables(target: string): Promise<string[]> {
    return expectSameTables(source, target, (await userTables(source)).filter((t) => t !== DECOY));
  }

  beforeAll(async () => {
    await createSampleDatabase(serverUrl('source'), sourceDb, 3000);
    const hostile = await createDatabase('source', hostileDb);
    await withClient(hostile, (c) => c.query(readFileSync(join(__dirname, '..', 'fixtures', 'hostile-schema.sql'), 'utf8')));
    await withClient(source, (c) =>
      c.query(`
        CREATE SCHEMA "Dump Schema";
        CREATE TABLE ${HOSTILE} (
          "ID" bigint GENERATED ALWAYS AS IDENTITY (START WITH 10 INCREMENT BY 5) PRIMARY KEY,
          "Customer" bigint NOT NULL REFERENCES public.customers (id),
          "v.x*?" text,
          "Ünï" date,
          CONSTRAINT "v ""check""" CHECK ("v.x*?" <> '')
        );
        CREATE INDEX "Dump ""Me"" idx" ON ${HOSTILE} ("Customer", lower("v.x*?"));
        INSERT INTO ${HOSTILE} ("Customer", "v.x*?", "Ünï")
          SELECT 1 + g % 100, CASE WHEN g % 7 = 0 THEN NULL ELSE E'row \\\\ "' || g || E'"\\ttab' END, date '2024-01-01' + g
          FROM generate_series(1, 500) g;
        CREATE TABLE ${DECOY} (a int);
        INSERT INTO ${DECOY} VALUES (1);
        ANALYZE;`),
    );
    worker = await startWorker(cliEnv(queue, { ...secrets, DBFERRY_DUMP_DIR: dumpDir }));
  });

  afterAll(async () => {
    await worker?.stop();
    rmSync(dumpDir, { recursive: true, force: true });
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('source', hostileDb), ...targetDbs.map((d) => dropDatabase('target', d))]);
  });

  it('check runs preflight for the dump-restore plan (pg_dump found and new enough on the worker)', async () => {
    const res = await dbferry(['check', plan(0), '--json'], cliEnv(queue));
    expect(res.code).toBe(0);
    const report = JSON.parse(res.stdout);
    expect(report.tables).toHaveLength(6);
    expect(report.findings.filter((f: { severity: string }) => f.severity === 'blocking')).toEqual([]);
  });

  it('completes: every table equal, with keys, indexes, checks and sequences; nothing left on the worker', async () => {
    const res = await dbferry(['start', plan(0), '--wait'], cliEnv(queue));
    if (res.code !== 0) throw new Error(`exit ${res.code}\n${res.stdout}\n${res.stderr}\n${worker.output().slice(-3000)}`);
    expect(res.stdout).toContain('validation: every table equal');
    expect(res.stdout).toMatch(/dump and restore .*2 jobs/);

    const target = serverUrl('target', targetDbs[0]!);
    const tables = await expectEqualTables(target);
    expect(tables).toHaveLength(6);
    expect(tables).toContain(HOSTILE);
    expect(Number((await tableFingerprint(target, HOSTILE)).rows)).toBe(500);

    const [srcObjects, tgtObjects] = await Promise.all([schemaObjects(source), schemaObjects(target)]);
    expect(tgtObjects).toEqual(srcObjects);
    expect(tgtObjects.constraints.some((c) => c.includes('FOREIGN KEY') && c.includes('Dump "Me" Table'))).toBe(true);
    expect(tgtObjects.constraints.some((c) => c.includes('CHECK') && c.includes('v "check"'))).toBe(true);
    expect(tgtObjects.indexes.some((i) => i.includes('WHERE'))).toBe(true);
    expect(tgtObjects.indexes.some((i) => i.includes('"Dump ""Me"" idx"'))).toBe(true);
    // The identity's options came along: its next value follows the source's.
    expect(await nextSequenceValues(target)).toEqual(await nextSequenceValues(source));

    // The ledger validation read: one row per table, with the checksum taken in the dump's snapshot.
    const ledger = await withClient(target, (c) =>
      c.query("SELECT count(*)::int AS n, count(source_checksum)::int AS sums, count(DISTINCT snapshot)::int AS snapshots FROM _dbferry.table_loads"),
    );
    expect(ledger.rows[0]).toEqual({ n: 6, sums: 6, snapshots: 1 });
    // The dump directory never outlives the step.
    expect(readdirSync(dumpDir)).toEqual([]);
  });

  it('status --json: completed, the four dump-restore steps, rows and validation per table', async () => {
    const s = await status(names[0]!);
    expect(s.phase).toBe('completed');
    expect(s.mode).toBe('dump-restore');
    expect(s.steps.map((x: { step: string; status: string }) => [x.step, x.status])).toEqual([
      ['preflight', 'Succeeded'],
      ['create-database', 'Succeeded'],
      ['dump-restore', 'Succeeded'],
      ['validate', 'Succeeded'],
    ]);
    expect(s.tables).toHaveLength(6);
    for (const t of s.tables) {
      expect(t.validation).toBe('equal');
      expect(Number(t.fullLoadRows)).toBeGreaterThan(0);
    }
    expect(s.tables.find((t: { name: string }) => t.name === HOSTILE_KEY).fullLoadRows).toBe('500');
    for (const pw of [requiredEnv('DBFERRY_TEST_SOURCE_PASSWORD'), requiredEnv('DBFERRY_TEST_TARGET_PASSWORD')]) {
      expect(JSON.stringify(s)).not.toContain(pw);
      expect(worker.output()).not.toContain(pw);
    }
  });

  it('a table already on the target pauses dump-restore (TargetObjectConflict naming it); skip is refused; retry after the fix completes', async () => {
    const target = await createDatabase('target', targetDbs[1]!);
    await withClient(target, (c) => c.query(`CREATE SCHEMA "Dump Schema"; CREATE TABLE ${HOSTILE} (planted_by_someone_else int)`));
    const planFile = plan(1, false);
    const first = await dbferry(['start', planFile, '--wait'], cliEnv(queue));
    expect(first.code).toBe(3);
    expect(first.stdout).toContain(`FAILED STEP: dump-restore (TargetObjectConflict) on table ${HOSTILE_KEY}`);

    const paused = await status(names[1]!);
    expect(paused.phase).toBe('awaiting-operator');
    expect(paused.failure).toEqual(expect.objectContaining({ step: 'dump-restore', type: 'TargetObjectConflict', table: HOSTILE_KEY }));
    expect(paused.failure.message).toContain(`${HOSTILE_KEY} already exists`);
    // Nothing was restored next to it.
    expect(await userTables(target)).toEqual([HOSTILE]);

    const skip = await dbferry(['skip', names[1]!], cliEnv(queue));
    expect(skip.code).toBe(5);
    expect(skip.stderr).toContain('dump-restore cannot be skipped');

    await withClient(target, (c) => c.query(`DROP TABLE ${HOSTILE}`));
    const retry = await dbferry(['retry', names[1]!], cliEnv(queue));
    expect(retry.code).toBe(0);
    const done = await dbferry(['start', planFile, '--wait'], cliEnv(queue));
    expect(done.code).toBe(0);
    await expectEqualTables(target);
    expect((await status(names[1]!)).phase).toBe('completed');
  });

  it('a restore the target refuses pauses with the table; the retry replaces what the failed attempt left (nothing doubled)', async () => {
    // The moment pg_restore creates the hostile table, the target adds a check most of its rows violate.
    const target = await createDatabase('target', targetDbs[2]!);
    await plantCheckOnCreate(target, '"Dump Schema"."Dump ""Me"" Table"', '"Customer" < 3');
    const planFile = plan(2, false);
    const paused = await dbferry(['start', planFile, '--wait'], cliEnv(queue));
    expect(paused.code).toBe(3);
    const s = await status(names[2]!);
    expect(s.failure).toEqual(expect.objectContaining({ step: 'dump-restore', type: 'DataError', table: HOSTILE_KEY }));
    expect(s.failure.message).toContain('planted');
    expect(s.failure.message).not.toContain(requiredEnv('DBFERRY_TEST_TARGET_PASSWORD'));
    expect(readdirSync(dumpDir)).toEqual([]);

    await withClient(target, (c) => c.query('DROP EVENT TRIGGER plant'));
    const retry = await dbferry(['retry', names[2]!], cliEnv(queue));
    expect(retry.code).toBe(0);
    const done = await dbferry(['start', planFile, '--wait'], cliEnv(queue));
    if (done.code !== 0) throw new Error(`exit ${done.code}\n${done.stdout}\n${done.stderr}\n${worker.output().slice(-3000)}`);
    await expectEqualTables(target);
    expect(await schemaObjects(target)).toEqual(await schemaObjects(source));
    const final = await status(names[2]!);
    expect(final.phase).toBe('completed');
    expect(final.steps.find((x: { step: string }) => x.step === 'dump-restore').operatorRetries).toBe(1);
  });

  it('the hostile fixture (types, domains, extensions, sequences shared across schemas) restores equal', async () => {
    const planFile = writePlan(`name: ${names[3]}\nmode: dump-restore\nsource: { engine: postgres, url: env:SRC4_URL }\ntarget: { engine: postgres, url: env:TGT4_URL }\n`);
    const res = await dbferry(['start', planFile, '--wait'], cliEnv(queue));
    if (res.code !== 0) throw new Error(`exit ${res.code}\n${res.stdout}\n${res.stderr}\n${worker.output().slice(-3000)}`);
    expect(res.stdout).toContain('validation: every table equal');
    const src = serverUrl('source', hostileDb);
    const tgt = serverUrl('target', targetDbs[3]!);
    const tables = await expectSameTables(src, tgt);
    expect(tables.some((t) => t.includes('"Weird ""Schema"""'))).toBe(true);
    expect(await schemaObjects(tgt)).toEqual(await schemaObjects(src));
    // pg_dump carries every sequence's state exactly (full-load raises select_id_seq to the loaded maximum).
    expect(await nextSequenceValues(tgt)).toEqual(await nextSequenceValues(src));
  });
});
