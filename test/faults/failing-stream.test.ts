import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { createDatabase, dropDatabase, uniqueName, withClient } from '../support/databases';

jest.setTimeout(4 * 60_000);

/**
 * Fault of issue 18 (4): a change stream that fails on every attempt was reported as "caught
 * up" (status, and `start --wait` exit 0) from the heartbeat of attempts that never streamed.
 * Here the source cannot send a change at all: a bytea value of 520 MB (over 1 GB in text
 * form, which logical decoding cannot build), as in the issue. From then on nothing may say
 * "caught up", and the migration waits for an operator with the cause and the remedy (it was
 * retried for a quarter of an hour while status said "caught up").
 */
describe('fault: a change stream that keeps failing is never "caught up"', () => {
  const sourceDb = uniqueName('faults_fail');
  const targetDb = uniqueName('faults_fail_t');
  const name = uniqueName('fail').replace(/_/g, '-');
  const queue = `q-${name}`;
  let src: string;
  let tgt: string;
  let worker: WorkerProcess | undefined;

  beforeAll(async () => {
    src = await createDatabase('source', sourceDb);
    tgt = await createDatabase('target', targetDb);
    await withClient(src, (c) => c.query(`CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;`));
    worker = await startWorker(cliEnv(queue, { SRC_URL: src, TGT_URL: tgt }));
  });

  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await dbferry(['abort', name], cliEnv(queue));
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
  });

  it('status stops saying caught up, shows the failure, and the migration waits for an operator', async () => {
    const plan = writePlan(`
name: ${name}
mode: full-load-and-cdc
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
`);
    const started = await dbferry(['start', plan, '--wait'], cliEnv(queue));
    expect({ code: started.code, out: started.stdout }).toEqual({ code: 0, out: expect.stringContaining('CDC has caught up') });

    await withClient(src, (c) =>
      c.query(`ALTER TABLE t ADD COLUMN b bytea;
               UPDATE t SET b = decode(repeat('ab', 260 * 1024 * 1024), 'hex') || decode(repeat('cd', 260 * 1024 * 1024), 'hex') WHERE id = 1`),
    );
    const failingSince = Date.now();
    let sawFailure = false;
    for (;;) {
      const s = await dbferry(['status', name, '--json'], cliEnv(queue));
      const status = JSON.parse(s.stdout);
      if (Date.now() - failingSince > 3_000) expect({ caughtUp: status.lag?.caughtUp ?? false, phase: status.phase }).toEqual({ caughtUp: false, phase: expect.any(String) });
      if (status.phase === 'awaiting-operator') {
        expect(status.failure.step).toBe('cdc');
        expect(status.failure).toMatchObject({ type: 'SourceCannotSend', message: expect.stringMatching(/invalid memory alloc request size/) });
        expect(status.failure.hint).toMatch(/cannot travel through logical replication/);
        sawFailure = true;
        break;
      }
      if (Date.now() - failingSince > 150_000) break;
      await new Promise((r) => setTimeout(r, 1_000));
    }
    expect(sawFailure).toBe(true);
    // And a new `start --wait` does not claim caught up: it reports the pause (exit 3).
    const again = await dbferry(['start', plan, '--wait'], cliEnv(queue));
    expect(again.code).toBe(3);
  });
});
