import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSampleDatabase } from '../../local/sample-data';
import { freePort } from '../../local/processes';
import { dbferry, startWorker, untilCaughtUp, writePlan, type WorkerProcess } from '../support/cli';
import { tableFingerprint, userTables } from '../support/compare';
import { dropDatabase, requiredEnv, serverUrl, uniqueName, withClient } from '../support/databases';
import { makeTestPki, startTlsFront, type TestPki, type TlsFront } from '../support/temporal-tls-front';

/**
 * A worker as a platform team runs one: Temporal behind TLS with a client certificate and an
 * API key (as Temporal Cloud or an mTLS cluster), reached through the Temporal CLI's own
 * conventions (TEMPORAL_* variables for the worker, a temporal.toml profile for the CLI);
 * Prometheus metrics scraped while it loads and follows changes; JSON logs.
 */

/** The samples of one metric family in Prometheus text format: name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_x, c: string) => (c === 'n' ? '\n' : c));
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hits.length === 0 ? undefined : hits.reduce((a, s) => a + s.value, 0);
}

describe('a production worker: Temporal over mTLS with an API key, Prometheus metrics, JSON logs', () => {
  const sourceDb = uniqueName('prod');
  const targetDb = uniqueName('prod_copy');
  const name = uniqueName('prod').replace(/_/g, '-');
  const queue = `q-${name}`;
  const apiKey = `key-${Math.random().toString(36).slice(2)}`;
  const secrets = { SRC_URL: serverUrl('source', sourceDb), TGT_URL: serverUrl('target', targetDb) };
  let pki: TestPki;
  let front: TlsFront;
  let worker: WorkerProcess;
  let metricsPort: number;
  let profileFile: string;
  /** The CLI's environment: no TEMPORAL_* variables, only the profile file. */
  let cliEnv: NodeJS.ProcessEnv;

  const baseEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TEMPORAL_')));
  const scrape = async () => parsePrometheus(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());

  beforeAll(async () => {
    await createSampleDatabase(serverUrl('source'), sourceDb, 9000);
    pki = makeTestPki();
    front = await startTlsFront(requiredEnv('DBFERRY_TEST_TEMPORAL_ADDRESS'), pki, apiKey);
    metricsPort = await freePort();
    worker = await startWorker({
      ...baseEnv(),
      ...secrets,
      TEMPORAL_ADDRESS: front.address,
      TEMPORAL_NAMESPACE: 'default',
      TEMPORAL_API_KEY: apiKey,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
      TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey,
      DBFERRY_TASK_QUEUE: queue,
      DBFERRY_METRICS_PORT: String(metricsPort),
      DBFERRY_LOG_FORMAT: 'json',
    });
    profileFile = join(pki.dir, 'temporal.toml');
    writeFileSync(
      profileFile,
      `[profile.prod]
address = "${front.address}"
namespace = "default"
api_key = "${apiKey}"

[profile.prod.tls]
server_ca_cert_path = "${pki.caCert}"
client_cert_path = "${pki.clientCert}"
client_key_path = "${pki.clientKey}"
`,
    );
    cliEnv = { ...baseEnv(), TEMPORAL_CONFIG_FILE: profileFile, DBFERRY_TASK_QUEUE: queue };
  });

  afterAll(async () => {
    await worker?.stop();
    await front?.close();
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
  });

  it('migrates with CDC through TLS and an API key; /metrics shows rows loaded growing, changes applied and the lag; every log line is JSON with migration and step, and no secret', async () => {
    const planFile = writePlan(`
name: ${name}
mode: full-load-and-cdc
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL }
load: { parallel: 2, chunkRows: 400 }
`);
    const src = serverUrl('source', sourceDb);
    const tables = await userTables(src);
    const sourceRows = await withClient(src, async (c) => {
      let n = 0;
      for (const t of tables) n += Number((await c.query(`SELECT count(*) AS n FROM ${t}`)).rows[0].n);
      return n;
    });

    const started = await dbferry(['--profile', 'prod', 'start', planFile], cliEnv);
    expect({ code: started.code, stderr: started.stderr }).toEqual({ code: 0, stderr: expect.stringContaining(`started migration ${name}`) });

    // Scrape while it loads, until CDC has caught up.
    const loaded: number[] = [];
    const done = untilCaughtUp(name, { ...cliEnv, TEMPORAL_PROFILE: 'prod' }, worker, 240_000).then(() => true);
    let caughtUp = false;
    void done.then(() => (caughtUp = true), () => (caughtUp = true));
    while (!caughtUp) {
      const v = total(await scrape(), 'dbferry_rows_loaded_total', { migration: name });
      if (v !== undefined) loaded.push(v);
      await new Promise((r) => setTimeout(r, 100));
    }
    await done;
    const afterLoad = await scrape();
    expect(total(afterLoad, 'dbferry_rows_loaded_total', { migration: name })).toBe(sourceRows);
    // It grew while the load ran: never down, and seen part-way.
    expect(loaded.every((v, i) => i === 0 || v >= loaded[i - 1]!)).toBe(true);
    expect(loaded.filter((v) => v > 0 && v < sourceRows).length).toBeGreaterThan(0);
    expect(total(afterLoad, 'dbferry_load_tasks_done_total', { migration: name })).toBeGreaterThan(1);
    // The SDK's own worker metrics are on the same endpoint.
    expect(afterLoad.some((s) => s.name.startsWith('temporal_') && s.labels.task_queue === queue)).toBe(true);

    // Changes on the source: counted by kind as CDC applies them; the lag is exported.
    await withClient(src, (c) => c.query(`UPDATE customers SET name = name || ' (moved)' WHERE id <= 40`));
    await withClient(src, (c) => c.query(`DELETE FROM order_items WHERE order_id <= 5`));
    const deadline = Date.now() + 60_000;
    let cdc: Sample[] = [];
    for (;;) {
      cdc = await scrape();
      const updates = total(cdc, 'dbferry_cdc_changes_applied_total', { migration: name, table: 'public.customers', kind: 'update' }) ?? 0;
      const deletes = total(cdc, 'dbferry_cdc_changes_applied_total', { migration: name, table: 'public.order_items', kind: 'delete' }) ?? 0;
      if (updates >= 40 && deletes > 0) break;
      if (Date.now() > deadline) throw new Error(`CDC changes not exported: ${JSON.stringify(cdc.filter((s) => s.name.startsWith('dbferry_cdc')))}\n${worker.output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(total(cdc, 'dbferry_cdc_changes_applied_total', { migration: name, table: 'public.customers', kind: 'update' })).toBe(40);
    const lag = cdc.find((s) => s.name === 'dbferry_cdc_lag_seconds' && s.labels.migration === name);
    expect(lag?.value).toBeGreaterThanOrEqual(0);
    expect(cdc.find((s) => s.name === 'dbferry_source_retained_bytes' && s.labels.migration === name)?.value).toBeGreaterThanOrEqual(0);

    const cut = await dbferry(['--profile', 'prod', 'cutover', name, '--wait'], cliEnv);
    expect({ code: cut.code, out: cut.stdout }).toEqual({ code: 0, out: expect.stringContaining('validation: every table equal') });
    const tgt = serverUrl('target', targetDb);
    for (const t of tables) expect({ t, fp: await tableFingerprint(tgt, t) }).toEqual({ t, fp: await tableFingerprint(src, t) });
    const validated = await scrape();
    expect(total(validated, 'dbferry_tables_validated_total', { migration: name, result: 'equal' })).toBe(tables.length);
    expect(total(validated, 'dbferry_tables_validated_total', { migration: name, result: 'different' }) ?? 0).toBe(0);

    // The log: one JSON object per line; activity and workflow lines say migration and step.
    const lines = worker.output().split('\n').filter((l) => l.trim() !== '');
    const parsed = lines.map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON log line: ${l}`);
      }
    });
    for (const p of parsed) expect(p).toEqual(expect.objectContaining({ time: expect.any(String), level: expect.any(String), msg: expect.any(String), worker: expect.any(String) }));
    const ours = parsed.filter((p) => p.migration === name || p.activityType !== undefined);
    expect(ours.length).toBeGreaterThan(10);
    for (const p of ours) expect({ msg: p.msg, migration: p.migration, step: typeof p.step }).toEqual({ msg: p.msg, migration: name, step: 'string' });
    const msgs = parsed.filter((p) => p.migration === name).map((p) => `${String(p.step)}: ${String(p.msg)}`);
    expect(msgs).toEqual(expect.arrayContaining(['full-load: step full-load started', 'full-load: step full-load done', 'cdc: step cdc started', 'validate: step validate done']));
    const copied = parsed.find((p) => p.migration === name && String(p.msg).startsWith('copied '));
    expect(copied).toEqual(expect.objectContaining({ step: 'full-load', table: expect.any(String), rows: expect.any(Number), rowsPerSecond: expect.any(Number), attempt: expect.any(Number) }));
    // No secret: the database passwords, the API key, the client key.
    const log = worker.output();
    for (const url of [requiredEnv('DBFERRY_TEST_SOURCE_URL'), requiredEnv('DBFERRY_TEST_TARGET_URL')]) expect(log).not.toContain(decodeURIComponent(new URL(url).password));
    expect(log).not.toContain(apiKey);
  });

  it('a CA that did not sign the server certificate: exit 6 naming the address and the TLS problem', async () => {
    const res = await dbferry(['list'], { ...baseEnv(), TEMPORAL_ADDRESS: front.address, TEMPORAL_API_KEY: apiKey, TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.otherCaCert, TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert, TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey });
    expect(res.code).toBe(6);
    expect(res.stderr).toMatch(new RegExp(`^dbferry: TLS with Temporal at ${front.address.replace(/\./g, '\\.')} failed: .*certificate.*TEMPORAL_TLS_SERVER_CA_CERT_PATH`, 'm'));
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });

  it('a wrong API key: exit 6, the server refused the credentials; plaintext to a TLS server: exit 6 saying so', async () => {
    const refusedBefore = front.refused;
    const wrongKey = await dbferry(['--profile', 'prod', 'list'], { ...cliEnv, TEMPORAL_API_KEY: 'not-the-key' });
    expect(wrongKey.code).toBe(6);
    expect(wrongKey.stderr).toMatch(/Temporal at 127\.0\.0\.1:\d+ \(profile prod\) refused the credentials: .*(invalid API key|UNAUTHENTICATED).*TEMPORAL_API_KEY/);
    expect(wrongKey.stderr).not.toContain('not-the-key');
    expect(front.refused).toBeGreaterThan(refusedBefore);

    const plaintext = await dbferry(['list'], { ...baseEnv(), TEMPORAL_ADDRESS: front.address });
    expect(plaintext.code).toBe(6);
    expect(plaintext.stderr).toMatch(new RegExp(`Temporal at ${front.address.replace(/\./g, '\\.')}.*plaintext`));
  });

  it('flags win over the profile; a profile that is not in the file is exit 2 naming it', async () => {
    const flagged = await dbferry(['--profile', 'prod', '--address', '127.0.0.1:1', 'list'], cliEnv);
    expect(flagged.code).toBe(6);
    // Nothing listens there: unreachable, not a TLS problem (although the profile's TLS applies).
    expect(flagged.stderr).toMatch(/^dbferry: cannot reach Temporal at 127\.0\.0\.1:1 \(profile prod\)/m);
    const noFile = await dbferry(['list'], { ...cliEnv, TEMPORAL_CONFIG_FILE: join(pki.dir, 'nope.toml') });
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toContain('nope.toml: no such file');
    const missing = await dbferry(['--profile', 'staging', 'list'], cliEnv);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/Temporal client configuration .*temporal\.toml.*staging/);
    const listed = await dbferry(['--profile', 'prod', 'list', '--json'], cliEnv);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as Array<{ name: string }>).map((m) => m.name)).toContain(name);
  });
});
