import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { createDatabase, dropDatabase, uniqueName } from '../support/databases';

/**
 * Faults of issue 18 (5, 6): a secret reference that resolves to something else, a wrong file
 * given as the plan or the mapping, a plan too large for Temporal, a worker with no Temporal.
 * Each ends at once with one clear line and a meaningful exit code, and never shows a secret.
 */
describe('fault: bad input fails at once and never echoes a secret', () => {
  const queue = uniqueName('faults_input');
  const dir = mkdtempSync(join(tmpdir(), 'dbferry-faults-'));
  const targetDb = uniqueName('faults_t');
  let targetUrl: string;
  let worker: WorkerProcess | undefined;
  const SHADOW = 'root:$6$Zq9sEcReTsAlT$h4shh4shh4sh:19000:0:99999:7:::';

  beforeAll(async () => {
    targetUrl = await createDatabase('target', targetDb);
    writeFileSync(join(dir, 'shadow'), SHADOW + '\n');
    worker = await startWorker(cliEnv(queue, { FAULTS_TGT_URL: targetUrl }));
  });

  afterAll(async () => {
    await worker?.stop();
    await dropDatabase('target', targetDb);
  });

  test('source.url file: holding something else (a shadow file) fails naming the reference, never the content', async () => {
    const plan = writePlan(`
name: faults-shadow
source: { engine: postgres, url: "file:${join(dir, 'shadow')}" }
target: { engine: postgres, url: env:FAULTS_TGT_URL }
`);
    const r = await dbferry(['check', plan], cliEnv(queue));
    const out = r.stdout + r.stderr + worker!.output();
    expect(r.code).not.toBe(0);
    expect(out).toContain(`file:${join(dir, 'shadow')}`);
    expect(out).toContain('not a PostgreSQL connection URL');
    for (const piece of ['Zq9sEcReTsAlT', 'h4shh4sh', '19000:0:99999']) expect(out).not.toContain(piece);
  });

  test('a .env file given as the plan: exit 2, one line, the password masked', async () => {
    const env = join(dir, 'prod.env');
    writeFileSync(env, 'SOURCE_URL=postgres://app:Pr0dPassw0rd@db:5432/shop\nTARGET_URL=postgres://app:Pr0dPassw0rd@db2/shop\n');
    const r = await dbferry(['check', env], cliEnv(queue));
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain('Pr0dPassw0rd');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('expected a mapping of plan fields');
  });

  test('a binary file given as the plan: exit 2 with a short message, not the file', async () => {
    const bin = join(dir, 'plan.bin');
    writeFileSync(bin, Buffer.from(Array.from({ length: 9775 }, (_, i) => (i * 7919) % 256)));
    const r = await dbferry(['check', bin], cliEnv(queue));
    expect(r.code).toBe(2);
    expect(r.stderr.length).toBeLessThan(400);
  });

  test('tables.mappings naming a file that is not JSON: exit 2 naming the file, not quoting it', async () => {
    const mappings = join(dir, 'mappings.json');
    // JSON.parse's message quotes the start of the text: where a token file's secret stands.
    writeFileSync(mappings, 'Th1sIsAS3cret\n');
    const plan = writePlan(`
name: faults-mappings
source: { engine: postgres, url: env:SRC }
target: { engine: postgres, url: env:TGT }
tables: { mappings: "file:${mappings}" }
`);
    const r = await dbferry(['check', plan], cliEnv(queue));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(mappings);
    expect(r.stderr).toContain('not valid JSON');
    expect(r.stderr).not.toContain('Th1sIsAS');
  });

  test('a 3 MB plan is refused at once (exit 2) naming the limit, not after a minute at Temporal', async () => {
    const rules = Array.from({ length: 14_000 }, (_, i) => ({
      'rule-type': 'selection',
      'rule-id': String(i + 1),
      'rule-name': `include-${i}-${'x'.repeat(120)}`,
      'rule-action': 'include',
      'object-locator': { 'schema-name': 'public', 'table-name': `table_${i}_${'y'.repeat(40)}` },
    }));
    const mappings = join(dir, 'huge.json');
    writeFileSync(mappings, JSON.stringify({ rules }));
    const plan = writePlan(`
name: faults-huge
source: { engine: postgres, url: env:SRC }
target: { engine: postgres, url: env:TGT }
tables: { mappings: "file:${mappings}" }
`);
    const started = Date.now();
    const r = await dbferry(['start', plan], cliEnv(queue));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/the plan is [\d.]+ MB as workflow input; dbferry accepts at most 1 MB/);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  test('dbferry worker with Temporal unreachable: exit 6 naming the address', async () => {
    const r = await dbferry(['worker'], { ...cliEnv(queue), TEMPORAL_ADDRESS: '127.0.0.1:9' });
    expect(r.code).toBe(6);
    expect(r.stderr).toContain('cannot reach Temporal at 127.0.0.1:9');
  });
});
