import { Client } from 'pg';
import { formatReport } from '../../client/render';
import { cliEnv, dbferry, startWorker, untilCaughtUp, writePlan, type WorkerProcess } from '../support/cli';
import { createDatabase, dropDatabase, serverUrl, uniqueName } from '../support/databases';
import { createTablesSql, expectKeysRight, keyFacts, KEYS_PLAN, orderIds, seed, startWorkload, type Exec } from '../support/key-redesign';
import { untilStatus, waitFor } from '../support/wait';

jest.setTimeout(10 * 60_000);

/**
 * Key redesign from PostgreSQL: the same scenario as from MySQL, with the items' composite
 * foreign key (ON DELETE / ON UPDATE CASCADE, whose cascaded rows pgoutput sends) and a payment
 * that names no order at load time: the build pauses with the orphan named, the operator
 * accepts it, and CDC links it once its order arrives.
 */
describe('key redesign from PostgreSQL: surrogate key and new foreign keys through full load + CDC', () => {
  const sourceDb = uniqueName('pgkeys_source');
  const targetDb = uniqueName('pgkeys_target');
  const tgt = () => serverUrl('target', targetDb);
  const name = uniqueName('pgkeys').replace(/_/g, '-');
  let env: NodeJS.ProcessEnv;
  let worker: WorkerProcess | undefined;
  let src: Client;
  const exec: Exec = async (sql, params) => {
    let n = 0;
    const r = await src.query({ text: sql.replace(/\?/g, () => `$${++n}`), values: params ?? [], rowMode: 'array' });
    return (r.rows ?? []) as unknown[][];
  };

  beforeAll(async () => {
    const url = await createDatabase('source', sourceDb);
    src = new Client({ connectionString: url });
    src.on('error', () => undefined);
    src.setTypeParser(1082, (x: string) => x);
    await src.connect();
    await src.query('CREATE SCHEMA shop');
    for (const sql of createTablesSql({ schema: 'shop', itemsCascade: true })) await src.query(sql);
    await seed(exec, { orphan: true });
    env = cliEnv(`q-${name}`, { SRC_URL: url, TGT_URL: tgt() });
    worker = await startWorker(env);
  });

  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await src?.end().catch(() => undefined);
    await dropDatabase('source', sourceDb);
    await dropDatabase('target', targetDb);
  });

  it('pauses on an orphan, then keeps every new reference right through CDC, a SIGKILL and cutover', async () => {
    const plan = writePlan(`
name: ${name}
mode: full-load-and-cdc
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
${KEYS_PLAN}`);
    const started = await dbferry(['start', plan, '--wait', '--json'], env);
    expect({ code: started.code, out: started.code === 3 ? '' : started.stdout.slice(0, 3000) + started.stderr.slice(-2000) }).toEqual({ code: 3, out: '' });
    const paused = JSON.parse(started.stdout);
    expect(paused.failure).toMatchObject({ step: 'build-indexes', type: 'OrphanRows' });
    expect(paused.failure.message).toMatch(/1 rows of shop\.payments name no shop\.orders by \(customer_id, order_no\), e\.g\. \(999,GONE-1\)/);

    const skipped = await dbferry(['skip', name, '--reason', 'the order arrives later'], env);
    expect({ code: skipped.code, out: skipped.stdout + skipped.stderr }).toMatchObject({ code: 0 });
    await untilStatus(name, (s) => s.phase === 'cdc', env);
    const loaded = await keyFacts(tgt());
    expect(loaded.wrongLinks).toEqual({ order_items: 0, payments: 0 });
    expect(loaded.linked).toEqual({ order_items: 1200, payments: 400 });
    const idsBefore = await orderIds(tgt());

    const workload = startWorkload(exec, { seed: 11, rounds: 600 });
    await waitFor('300 source transactions', async () => workload.rounds() >= 300, { timeoutMs: 120_000 });
    await worker!.stop('SIGKILL');
    worker = await startWorker(env);
    await waitFor('300 more source transactions', async () => workload.rounds() >= 600, { timeoutMs: 120_000 });
    const did = await workload.stop();
    expect(Object.keys(did).sort()).toEqual(['delete-item', 'delete-order', 'items-before-order', 'move-item', 'move-payment', 'order-with-items', 'rename-order', 'update-order']);
    // The orphan's order arrives: CDC links the payment loaded long before it.
    await exec("INSERT INTO shop.orders VALUES (999, 'GONE-1', '2024-03-01', '2.00')");
    await untilCaughtUp(name, env, worker);

    const cut = await dbferry(['cutover', name, '--wait', '--json'], env);
    expect({ code: cut.code, out: cut.code === 0 ? '' : cut.stdout.slice(0, 3000) + cut.stderr.slice(-2000) }).toEqual({ code: 0, out: '' });
    const report = JSON.parse(cut.stdout);
    // The report a person reads says what was checked of the new references.
    expect(formatReport(report)).toMatch(/shop\.payments .*equal \(rows \d+\/\d+, checksum equal; order_id: 0 wrong, \d+ orphans\)/);
    await expectKeysRight(tgt(), exec, report, idsBefore, [
      'order_items f FOREIGN KEY (customer_id, order_no) REFERENCES shop.orders(customer_id, order_no) ON UPDATE CASCADE ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED valid',
      'order_items f FOREIGN KEY (order_id) REFERENCES shop.orders(id) ON DELETE CASCADE valid',
      'order_items p PRIMARY KEY (customer_id, order_no, line_no) valid',
      'orders p PRIMARY KEY (id) valid',
      'orders u UNIQUE (customer_id, order_no) valid',
      'payments f FOREIGN KEY (order_id) REFERENCES shop.orders(id) ON DELETE SET NULL valid',
      'payments p PRIMARY KEY (payment_id) valid',
    ]);
    // The orphan's order arrived during CDC: the payment loaded long before it is linked (no wrong links above).
    expect((await orderIds(tgt())).get('999/GONE-1')).toBeDefined();
  });
});
