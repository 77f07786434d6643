import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { expectSameTables } from '../support/compare';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';
import { quoteIdent } from '../../plan/sql-names';

jest.setTimeout(5 * 60_000);

interface Received {
  kind: string;
  text: string;
  step?: string;
  command?: string;
  migration: string;
}

/** A webhook receiver like Slack's: it records what it gets. */
async function receiver(): Promise<{ url: string; got: Received[]; close(): Promise<void> }> {
  const got: Received[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      got.push(JSON.parse(body) as Received);
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}/hooks/T000/secret-token`, got, close: () => new Promise((r) => server.close(() => r())) };
}

/**
 * At 3 a.m. a paused migration must reach a person: the alert names the step, the object and the
 * command; a receiver that is down never stops the migration, and status says what was missed.
 */
describe('alerts', () => {
  const sourceDb = uniqueName('alerts');
  const targetDb = uniqueName('alerts_copy');
  const role = uniqueName('limited');
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const queue = `q-${uniqueName('alerts')}`;
  let src: string;
  let tgtLimited: string;
  let tgtAdmin: string;
  let worker: WorkerProcess | undefined;

  beforeAll(async () => {
    src = await createDatabase('source', sourceDb);
    await withClient(src, (c) =>
      c.query(`CREATE TABLE orders (id int PRIMARY KEY, total numeric(10,2));
               INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 2000) g;`),
    );
    tgtAdmin = await createDatabase('target', targetDb);
    // The target user may connect, but not create anything: create-tables will be refused.
    await withClient(serverUrl('target'), (c) =>
      c.query(`CREATE ROLE ${quoteIdent(role)} LOGIN PASSWORD '${password}'; GRANT CONNECT ON DATABASE ${quoteIdent(targetDb)} TO ${quoteIdent(role)}`),
    );
    const u = new URL(serverUrl('target', targetDb));
    u.username = role;
    u.password = password;
    tgtLimited = u.toString();
  });

  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
    await withClient(serverUrl('target'), (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`)).catch(() => undefined);
  });

  it('a missing privilege pauses with an alert naming step, object and command; retry after the grant completes', async () => {
    const hook = await receiver();
    try {
      const env = { SRC_URL: src, TGT_URL: tgtLimited, HOOK: hook.url };
      worker = await startWorker(cliEnv(queue, env));
      const name = uniqueName('alert').replace(/_/g, '-');
      const plan = writePlan(`
name: ${name}
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL, createDatabase: false }
alerts: { webhook: env:HOOK }
`);
      const started = await dbferry(['start', plan, '--wait'], cliEnv(queue));
      expect(started.code).toBe(3);
      await waitFor('the pause alert', async () => hook.got.some((a) => a.kind === 'paused'));
      const paused = hook.got.find((a) => a.kind === 'paused')!;
      expect(paused).toMatchObject({ migration: name, step: 'create-tables', command: `dbferry retry ${name}` });
      expect(paused.text).toContain('create-tables');
      expect(paused.text).toContain(targetDb); // the object: "permission denied for database …"
      expect(paused.text).toContain(`dbferry retry ${name}`);
      expect(paused.text).not.toContain(password);
      expect(hook.got.some((a) => a.kind === 'check')).toBe(true); // preflight tried the webhook

      // Every worker stopped: status still shows the failure (from the memo).
      await worker.stop('SIGKILL');
      worker = undefined;
      const offline = await dbferry(['status', name, '--json'], cliEnv(queue));
      expect(offline.code).toBe(0);
      expect(JSON.parse(offline.stdout)).toMatchObject({ phase: 'awaiting-operator', failure: { step: 'create-tables', type: 'PermissionDenied' } });

      worker = await startWorker(cliEnv(queue, env));
      await withClient(tgtAdmin, (c) => c.query(`GRANT CREATE ON DATABASE ${quoteIdent(targetDb)} TO ${quoteIdent(role)}; GRANT CREATE ON SCHEMA public TO ${quoteIdent(role)}`));
      const retried = await dbferry(['retry', name], cliEnv(queue));
      expect(retried.code).toBe(0);
      const done = await waitForPhase(name, 'completed');
      expect(done.tables.every((t: { validation: string }) => t.validation === 'equal')).toBe(true);
      await expectSameTables(src, tgtAdmin, ['public.orders']);
      await waitFor('the completion alert', async () => hook.got.some((a) => a.kind === 'completed'));
      expect(hook.got.map((a) => a.kind)).toEqual(expect.arrayContaining(['check', 'paused', 'resumed', 'completed']));
    } finally {
      await hook.close();
    }
  });

  it('a receiver that is down does not stop the migration; status reports the missed alerts', async () => {
    const down = await receiver();
    await down.close(); // nothing listens on its port any more
    const env = { SRC_URL: src, TGT_URL: tgtAdmin, HOOK: down.url };
    await worker?.stop('SIGKILL');
    worker = await startWorker(cliEnv(queue, env));
    const name = uniqueName('deadhook').replace(/_/g, '-');
    await withClient(tgtAdmin, (c) => c.query('DROP TABLE IF EXISTS orders; DROP SCHEMA IF EXISTS _dbferry CASCADE'));
    const plan = writePlan(`
name: ${name}
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL, createDatabase: false }
alerts: { webhook: env:HOOK }
`);
    const started = await dbferry(['start', plan, '--wait', '--json'], cliEnv(queue));
    expect(started.code).toBe(0);
    const status = await dbferry(['status', name, '--json'], cliEnv(queue));
    const s = JSON.parse(status.stdout);
    expect(s.phase).toBe('completed');
    expect(s.alerts.missed).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'completed', error: expect.stringMatching(/did not answer/) })]));
    expect(JSON.stringify(s)).not.toContain('secret-token'); // the webhook URL is a secret
    const text = await dbferry(['status', name], cliEnv(queue));
    expect(text.stdout).toMatch(/ALERTS NOT DELIVERED/);
  });
});

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function waitForPhase(name: string, phase: string, timeoutMs = 120_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await dbferry(['status', name, '--json'], cliEnv('unused'));
    const s = r.code === 0 ? JSON.parse(r.stdout) : undefined;
    if (s?.phase === phase) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${name} to be ${phase}: ${r.stdout.slice(0, 1500)}`);
    await new Promise((res) => setTimeout(res, 500));
  }
}
