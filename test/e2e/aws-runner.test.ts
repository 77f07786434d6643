import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { workflowSource } from '../../worker/worker';
import { cliEnv, dbferry, writePlan } from '../support/cli';
import { tableFingerprint } from '../support/compare';
import { createDatabase, dropDatabase, requiredEnv, serverUrl, uniqueName, withClient } from '../support/databases';
import { FakeAws } from '../support/fake-aws';
import { createTablesSql, KEY_CONSTRAINTS, keyFacts, KEYS_PLAN, orderIds, seed, sourceRows, startWorkload, targetRows, type Exec } from '../support/key-redesign';
import { startMariaSource, type MariaSource } from '../support/mariadb-source';
import { untilStatus, waitFor } from '../support/wait';

jest.setTimeout(6 * 60_000);

/**
 * The aws runner end to end: the real workflow on the real Temporal server, a real worker (in
 * this process, so that the AWS SDK can be faked at its boundary), real PostgreSQL source and
 * target with TLS, and the `dbferry` CLI as a user runs it. The fake DMS moves the rows itself
 * (test/support/fake-aws.ts), so "equal" is about real rows, read here independently.
 */
const queue = `aws-${uniqueName('q')}`;
const BUNDLE = join(__dirname, '..', '..', 'dist', 'workflow-bundle.js');
const env = cliEnv(queue);
let fake: FakeAws;
let worker: Worker;
let running: Promise<void>;
let connection: NativeConnection;

beforeAll(async () => {
  process.env.DBFERRY_AWS_POLL_MS = '200';
  process.env.DBFERRY_AWS_BACKOFF_MS = '20';
  connection = await NativeConnection.connect({ address: requiredEnv('DBFERRY_TEST_TEMPORAL_ADDRESS') });
  worker = await Worker.create({
    connection,
    taskQueue: queue,
    // The bundle the build made (the CLI runs from dist/ too): no bundling in the test.
    ...(existsSync(BUNDLE) ? { workflowBundle: { codePath: BUNDLE } } : workflowSource()),
    activities: createActivities(),
    maxHeartbeatThrottleInterval: '1s',
    shutdownGraceTime: '2s',
  });
  running = worker.run();
}, 120_000);

// Each test gets an AWS of its own: the commands it records are this test's.
beforeEach(() => {
  fake = new FakeAws();
});

afterEach(async () => {
  await fake.idle();
  fake.restore();
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await connection?.close();
});

const TABLES = ['shop.customers', 'shop."Order Lines"'];

const SHOP_SQL = `CREATE SCHEMA shop;
  CREATE TABLE shop.customers (id int PRIMARY KEY, name text NOT NULL, since date);
  CREATE TABLE shop."Order Lines" (id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES shop.customers, amount numeric(12,2), "Note" text);
  INSERT INTO shop.customers SELECT g, 'customer ' || g, date '2024-01-01' + g FROM generate_series(1, 40) g;
  INSERT INTO shop."Order Lines" SELECT g, 1 + g % 40, g * 1.25, CASE WHEN g % 7 = 0 THEN NULL ELSE 'note ''' || g || '''' END FROM generate_series(1, 200) g;`;

interface Scenario {
  name: string;
  sourceDb: string;
  targetDb: string;
  src: string;
  tgt: () => string;
}

/** A source with two tables (one with a hostile name and a foreign key), the worker's URLs set. */
async function scenario(prefix: string): Promise<Scenario> {
  const name = uniqueName(prefix).replace(/_/g, '-');
  const sourceDb = uniqueName(`${prefix}_src`);
  const targetDb = uniqueName(`${prefix}_tgt`);
  const src = await createDatabase('source', sourceDb);
  await withClient(src, (c) => c.query(SHOP_SQL));
  const key = name.replace(/-/g, '_').toUpperCase();
  process.env[`SRC_${key}`] = src;
  process.env[`TGT_${key}`] = serverUrl('target', targetDb);
  return { name, sourceDb, targetDb, src, tgt: () => serverUrl('target', targetDb) };
}

const urls = (s: Scenario) => {
  const key = s.name.replace(/-/g, '_').toUpperCase();
  return { source: `env:SRC_${key}`, target: `env:TGT_${key}` };
};

async function expectSameRows(s: Scenario): Promise<void> {
  for (const t of TABLES) expect({ t, ...(await tableFingerprint(s.tgt(), t)) }).toEqual({ t, ...(await tableFingerprint(s.src, t)) });
}

/** A plan for the aws runner (its replication instance named after the migration). */
function awsPlan(o: { name: string; mode: string; source: string; target: string; extra?: string; sns?: boolean }): string {
  return writePlan(`
name: ${o.name}
mode: ${o.mode}
runner: aws
source: ${o.source}
target: ${o.target}
${o.extra ?? ''}
aws:
  region: eu-west-1
  replicationInstance: { id: ri-${o.name}, class: dms.t3.medium }
${o.sns ? '  snsTopicArn: arn:aws:sns:eu-west-1:123456789012:dbferry' : ''}
`);
}

const started = (args: string[]) => dbferry(args, env);
const json = (r: { stdout: string }) => JSON.parse(r.stdout);

describe('aws runner (AWS SDK faked at its boundary; real Temporal, PostgreSQL, CLI)', () => {
  it('on-premises PostgreSQL → a new RDS instance by dump-restore (runner native): created, waited for, restored into, validated; a second migration adopts it', async () => {
    const s = await scenario('awsrds');
    const instanceId = `shop-${s.name}`.slice(0, 60);
    const target = new URL(requiredEnv('DBFERRY_TEST_TARGET_URL'));
    fake.rdsAt = { host: target.hostname, port: Number(target.port) };
    // The URL gives user, password and database: its host is the instance's endpoint, unknown before it exists.
    const key = s.name.replace(/-/g, '_').toUpperCase();
    process.env[`TGT_${key}`] = `postgres://postgres:${encodeURIComponent(requiredEnv('DBFERRY_TEST_TARGET_PASSWORD'))}@rds-endpoint.invalid:5432/${s.targetDb}`;
    const planFor = (mode: string, db: string) =>
      writePlan(`
name: ${s.name}${mode === 'full-load' ? '-again' : ''}
mode: ${mode}
source: { engine: postgres, url: ${urls(s).source} }
target: { engine: postgres, url: env:TGT_${key}${db === s.targetDb ? '' : '_AGAIN'} }
aws:
  region: eu-west-1
  rds:
    instanceId: ${instanceId}
    create: { class: db.t3.medium, engineVersion: "15", storageGb: 20, subnetGroup: private, securityGroups: [sg-0abc], parameterGroup: dbferry-pg15 }
`);
    const againDb = `${s.targetDb}_again`;
    process.env[`TGT_${key}_AGAIN`] = process.env[`TGT_${key}`]!.replace(`/${s.targetDb}`, `/${againDb}`);
    try {
      const check = await started(['check', planFor('dump-restore', s.targetDb)]);
      expect({ code: check.code, err: check.code === 0 ? '' : check.stdout + check.stderr }).toEqual({ code: 0, err: '' });
      expect(check.stdout).toContain(`RDS instance ${instanceId} does not exist yet: create-database creates it`);
      expect(fake.names()).not.toContain('CreateDBInstance');

      const start = await started(['start', planFor('dump-restore', s.targetDb), '--wait', '--json']);
      expect({ code: start.code, err: start.code === 0 ? '' : start.stdout + start.stderr }).toEqual({ code: 0, err: '' });
      expect(fake.inputsOf('CreateDBInstance')).toEqual([
        expect.objectContaining({
          DBInstanceIdentifier: instanceId,
          Engine: 'postgres',
          EngineVersion: '15',
          DBInstanceClass: 'db.t3.medium',
          AllocatedStorage: 20,
          MasterUsername: 'postgres',
          MasterUserPassword: requiredEnv('DBFERRY_TEST_TARGET_PASSWORD'),
          DBSubnetGroupName: 'private',
          VpcSecurityGroupIds: ['sg-0abc'],
          DBParameterGroupName: 'dbferry-pg15',
          StorageEncrypted: true,
          Tags: [{ Key: 'dbferry:migration', Value: s.name }],
        }),
      ]);
      const report = json(start);
      expect(report.status.tables.map((t: { validation: string }) => t.validation)).toEqual(['equal', 'equal']);
      expect(JSON.stringify(report)).not.toContain(requiredEnv('DBFERRY_TEST_TARGET_PASSWORD'));
      await expectSameRows(s);

      // Another migration into the same instance adopts it: no second CreateDBInstance.
      const again = await started(['start', planFor('full-load', againDb), '--wait', '--json']);
      expect({ code: again.code, err: again.code === 0 ? '' : again.stdout + again.stderr }).toEqual({ code: 0, err: '' });
      expect(fake.names().filter((n) => n === 'CreateDBInstance')).toHaveLength(1);
    } finally {
      await dropDatabase('source', s.sourceDb);
      await dropDatabase('target', s.targetDb);
      await dropDatabase('target', againDb);
    }
  });

  it('RDS PostgreSQL → RDS PostgreSQL with DMS full load + CDC over verify-ca endpoints: keys built before the cached changes, cutover, cleanup', async () => {
    const s = await scenario('awspg');
    const mapping = { rules: [{ 'rule-type': 'selection', 'rule-id': '1', 'rule-name': 'shop', 'object-locator': { 'schema-name': 'shop', 'table-name': '%' }, 'rule-action': 'include' }] };
    const plan = awsPlan({ name: s.name, mode: 'full-load-and-cdc', source: `{ engine: postgres, url: ${urls(s).source}, tls: { mode: verify-ca, ca: file:${requiredEnv('DBFERRY_TEST_SOURCE_CA')} } }`, target: `{ engine: postgres, url: ${urls(s).target}, tls: { mode: verify-ca, ca: file:${requiredEnv('DBFERRY_TEST_TARGET_CA')} } }`, extra: `tables: { mappings: file:mappings.json }`, sns: true });
    writeFileSync(join(dirname(plan), 'mappings.json'), JSON.stringify(mapping, null, 2));
    // The replication instance exists already: adopted, and kept by cleanup.
    fake.addInstance(`ri-${s.name}`);
    try {
      const start = await started(['start', plan, '--wait', '--json']);
      expect({ code: start.code, err: start.code === 0 ? '' : start.stdout + start.stderr }).toEqual({ code: 0, err: '' });
      expect(json(start).phase).toBe('cdc');

      // The order that keeps data safe, and the parameters that matter.
      const at = (n: string) => fake.names().indexOf(n);
      expect(at('CreateReplicationInstance')).toBe(-1);
      expect(at('ImportCertificate')).toBeGreaterThan(-1);
      expect(at('ImportCertificate')).toBeLessThan(at('CreateEndpoint'));
      expect(at('CreateEndpoint')).toBeLessThan(at('TestConnection'));
      expect(at('TestConnection')).toBeLessThan(at('CreateReplicationTask'));
      expect(at('CreateReplicationTask')).toBeLessThan(at('CreateEventSubscription'));
      expect(at('CreateEventSubscription')).toBeLessThan(at('StartReplicationTask'));
      expect(fake.inputsOf('StartReplicationTask').map((i) => i.StartReplicationTaskType)).toEqual(['start-replication', 'resume-processing']);
      expect(fake.inputsOf('CreateEndpoint').find((i) => i.EndpointType === 'target')).toMatchObject({ PostgreSQLSettings: { AfterConnectScript: 'SET session_replication_role = replica' } });
      for (const ep of fake.inputsOf('CreateEndpoint')) expect(ep).toMatchObject({ EngineName: 'postgres', SslMode: 'verify-ca', CertificateArn: expect.stringContaining(':cert:') });
      expect(fake.inputsOf('ImportCertificate').map((i) => i.CertificatePem)).toEqual(
        expect.arrayContaining([readFileSync(requiredEnv('DBFERRY_TEST_SOURCE_CA'), 'utf8').trim(), readFileSync(requiredEnv('DBFERRY_TEST_TARGET_CA'), 'utf8').trim()]),
      );
      const task = fake.inputsOf('CreateReplicationTask')[0]!;
      expect(task.MigrationType).toBe('full-load-and-cdc');
      expect(JSON.parse(task.TableMappings as string)).toEqual(mapping);
      expect(JSON.parse(task.ReplicationTaskSettings as string)).toMatchObject({
        FullLoadSettings: { TargetTablePrepMode: 'DO_NOTHING', StopTaskCachedChangesNotApplied: true },
        TargetMetadata: { FullLobMode: true },
      });
      expect(fake.inputsOf('CreateEventSubscription')[0]).toMatchObject({ SourceType: 'replication-task', SourceIds: [`dbferry-${s.name}-task`], EventCategories: ['failure', 'state change'] });
      // The primary keys existed on the target before DMS applied its cached changes.
      await waitFor('the fake DMS to look at the target on resume', async () => fake.keysWhenResumed !== undefined);
      expect(fake.keysWhenResumed).toEqual({ 'shop.customers': true, 'shop.Order Lines': true });
      // Nothing secret left the worker except towards AWS itself (the endpoint's password).
      expect(JSON.stringify(json(start))).not.toContain(requiredEnv('DBFERRY_TEST_SOURCE_PASSWORD'));

      // DMS falling behind: its latency is the lag in status, and past alerts.lagSeconds (60) an alert goes to SNS.
      fake.latencySeconds = 120;
      const behind = await untilStatus(s.name, (x) => x.lag?.seconds === 120, env);
      expect(behind.lag.caughtUp).toBe(false);
      await waitFor('the lag alert on SNS', async () => fake.published.some((p) => p.Message?.includes('"kind":"cdc-lag"') && p.Message.includes('120 s behind')));
      fake.latencySeconds = 0;
      await untilStatus(s.name, (x) => x.lag?.caughtUp === true, env);

      // A pause stops DMS too (nothing is applied until resume), and resume starts it again.
      const paused = await started(['pause', s.name]);
      expect({ code: paused.code, err: paused.stderr }).toEqual({ code: 0, err: '' });
      expect([...fake.tasks.values()][0]!.status).toMatch(/^stopp/);
      const resumed = await started(['resume', s.name]);
      expect({ code: resumed.code, err: resumed.stderr }).toEqual({ code: 0, err: '' });
      await waitFor('DMS resumed', async () => fake.inputsOf('StartReplicationTask').length === 3);
      expect(fake.inputsOf('StartReplicationTask').map((i) => i.StartReplicationTaskType)).toEqual(['start-replication', 'resume-processing', 'resume-processing']);

      // Changes during CDC, then cutover once the application stopped writing.
      await withClient(s.src, (c) =>
        c.query(`INSERT INTO shop.customers VALUES (41, 'new', NULL);
                 UPDATE shop."Order Lines" SET amount = amount + 1, "Note" = 'changed' WHERE id % 10 = 0;
                 DELETE FROM shop."Order Lines" WHERE id > 190;
                 INSERT INTO shop."Order Lines" VALUES (500, 41, 9.99, 'late');`),
      );
      const cut = await started(['cutover', s.name, '--wait', '--json']);
      expect({ code: cut.code, err: cut.code === 0 ? '' : cut.stdout + cut.stderr + (await started(['status', s.name, '--json'])).stdout }).toEqual({ code: 0, err: '' });
      const report = json(cut);
      expect(report.status.phase).toBe('completed');
      expect(report.status.tables.map((t: { name: string; validation: string }) => [t.name, t.validation])).toEqual([
        ['shop.Order Lines', 'equal'],
        ['shop.customers', 'equal'],
      ]);
      await expectSameRows(s);
      // DMS's task stopped once validation found the tables equal; CDC counts came from DMS.
      expect(at('StopReplicationTask')).toBeGreaterThan(at('StartReplicationTask'));
      expect(report.status.tables.find((t: { name: string }) => t.name === 'shop.Order Lines')).toMatchObject({ deletes: 10 });
      // The foreign key, deferred past the drain, is validated.
      const fk = await withClient(s.tgt(), (c) => c.query(`SELECT convalidated FROM pg_constraint WHERE contype = 'f' AND conrelid = 'shop."Order Lines"'::regclass`));
      expect(fk.rows).toEqual([{ convalidated: true }]);

      const cleaned = await started(['cleanup', s.name, '--json']);
      expect({ code: cleaned.code, err: cleaned.stderr }).toEqual({ code: 0, err: '' });
      expect(json(cleaned).kept).toEqual([`DMS replication instance ri-${s.name} (adopted, not created by this migration)`]);
      expect(fake.leftovers().filter((x) => x.includes(s.name))).toEqual([`instance ri-${s.name}`]);
    } finally {
      await dropDatabase('source', s.sourceDb);
      await dropDatabase('target', s.targetDb);
    }
  });

  it('mode cdc from PostgreSQL: DMS reads from a slot dbferry made, at the plan’s LSN; the slot is dropped when the migration ends', async () => {
    const s = await scenario('awspgcdc');
    // Loaded some other way (the same rows), then the source moves on.
    const tgt = await createDatabase('target', s.targetDb);
    await withClient(tgt, (c) => c.query(SHOP_SQL));
    const lsn = (await withClient(s.src, (c) => c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l'))).rows[0]!.l;
    const slot = `dbferry_${s.name.replace(/-/g, '_')}`;
    const plan = awsPlan({ name: s.name, mode: 'cdc', source: `{ engine: postgres, url: ${urls(s).source} }`, target: `{ engine: postgres, url: ${urls(s).target} }`, extra: `cdc: { startPosition: "${lsn}" }` });
    const slots = () => withClient(s.src, async (c) => (await c.query<{ plugin: string }>('SELECT plugin FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows);
    try {
      const start = await started(['start', plan, '--wait', '--json']);
      expect({ code: start.code, err: start.code === 0 ? '' : start.stdout + start.stderr }).toEqual({ code: 0, err: '' });
      expect(fake.inputsOf('CreateEndpoint').find((i) => i.EndpointType === 'source')).toMatchObject({ PostgreSQLSettings: { SlotName: slot, PluginName: 'test-decoding' } });
      expect(await slots()).toEqual([{ plugin: 'test_decoding' }]);
      // The slot was made after the plan's LSN: DMS starts at the slot's own start, not before.
      const startedAt = fake.inputsOf('StartReplicationTask')[0]!.CdcStartPosition as string;
      expect(startedAt).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      await withClient(s.src, (c) => c.query(`UPDATE shop.customers SET name = 'renamed' WHERE id = 7; DELETE FROM shop."Order Lines" WHERE id = 3`));
      await untilStatus(s.name, (x) => x.lag?.caughtUp === true, env);
      const cut = await started(['cutover', s.name, '--wait', '--json']);
      expect({ code: cut.code, err: cut.code === 0 ? '' : cut.stdout + cut.stderr }).toEqual({ code: 0, err: '' });
      expect(json(cut).validation.tables.map((t: { equal: boolean }) => t.equal)).toEqual([true, true]);
      await expectSameRows(s);
      expect(json(cut).finalize.cleanup.dropped).toContain(`replication slot ${slot} on the source`);
      expect(await slots()).toEqual([]);
    } finally {
      await withClient(s.src, (c) => c.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [slot])).catch(() => undefined);
      await dropDatabase('source', s.sourceDb);
      await dropDatabase('target', s.targetDb);
    }
  });

  it('a task that fails, throttling and a lost CreateReplicationTask answer: one task, a pause with DMS’s message on SNS, retry reloads from empty tables', async () => {
    const s = await scenario('awsfail');
    const plan = awsPlan({ name: s.name, mode: 'full-load', source: `{ engine: postgres, url: ${urls(s).source} }`, target: `{ engine: postgres, url: ${urls(s).target} }`, extra: `tables: { include: ["shop.%"] }`, sns: true });
    fake.throttleOnce.add('CreateEndpoint');
    fake.throttleOnce.add('DescribeTableStatistics');
    fake.loseAnswerOnce.add('CreateReplicationTask');
    fake.failLoadOnce = 'ERROR: could not extend file: No space left on device';
    try {
      const start = await started(['start', plan, '--wait', '--json']);
      expect({ code: start.code, err: start.code === 3 ? '' : start.stdout + start.stderr }).toEqual({ code: 3, err: '' });
      expect(json(start).failure).toMatchObject({ step: 'full-load', type: 'DmsTaskFailed', message: expect.stringContaining('No space left on device') });
      // Throttled calls were sent again; the lost answer did not make a second task.
      expect(fake.names().filter((n) => n === 'CreateReplicationTask')).toHaveLength(2);
      expect([...fake.tasks.keys()].filter((k) => k.includes(s.name))).toEqual([`dbferry-${s.name}-task`]);
      expect(fake.throttleOnce.size).toBe(0);
      await waitFor('the pause alert on SNS', async () =>
        fake.published.some((p) => p.TopicArn?.endsWith(':dbferry') && p.Message?.includes(s.name) && p.Message.includes('"kind":"paused"')),
      );
      // The selection rules DMS got were written from the include pattern.
      expect(JSON.parse(fake.inputsOf('CreateReplicationTask')[0]!.TableMappings as string).rules).toEqual([
        expect.objectContaining({ 'rule-type': 'selection', 'rule-action': 'include', 'object-locator': { 'schema-name': 'shop', 'table-name': '%' } }),
      ]);

      const retry = await started(['retry', s.name]);
      expect({ code: retry.code, err: retry.stderr }).toEqual({ code: 0, err: '' });
      const done = await untilStatus(s.name, (x) => x.phase === 'completed' || x.phase === 'awaiting-operator', env);
      expect(done.failure ?? null).toBeNull();
      expect(done.tables.map((t: { validation: string }) => t.validation)).toEqual(['equal', 'equal']);
      // DMS appends with DO_NOTHING: only emptied tables make the reload exact.
      await expectSameRows(s);
      expect(fake.inputsOf('StartReplicationTask').filter((i) => String(i.ReplicationTaskArn).includes(s.name.toUpperCase())).map((i) => i.StartReplicationTaskType)).toEqual([
        'start-replication',
        'reload-target',
      ]);

      const cleaned = await started(['cleanup', s.name, '--json']);
      expect({ code: cleaned.code, err: cleaned.stderr }).toEqual({ code: 0, err: '' });
      expect(fake.leftovers().filter((x) => x.includes(s.name))).toEqual([]);
    } finally {
      await dropDatabase('source', s.sourceDb);
      await dropDatabase('target', s.targetDb);
    }
  });

  it('a table in Table error pauses naming it; retry empties and reloads that table alone (the source URL from Secrets Manager)', async () => {
    const s = await scenario('awstable');
    const arn = `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${s.name}/source-AbCdEf`;
    fake.secretValues.set(arn, s.src);
    const plan = awsPlan({ name: s.name, mode: 'full-load', source: `{ engine: postgres, url: aws-secret:${arn} }`, target: `{ engine: postgres, url: ${urls(s).target} }`, extra: `tables: { include: ["shop.%"] }` });
    fake.tableErrorOnce = 'shop.Order Lines';
    try {
      const start = await started(['start', plan, '--wait', '--json']);
      expect({ code: start.code, err: start.code === 3 ? '' : start.stdout + start.stderr }).toEqual({ code: 3, err: '' });
      expect(json(start).failure).toMatchObject({ step: 'full-load', type: 'DmsTableError', table: 'shop.Order Lines' });
      const retry = await started(['retry', s.name]);
      expect(retry.code).toBe(0);
      const done = await untilStatus(s.name, (x) => x.phase === 'completed' || x.phase === 'awaiting-operator', env);
      expect(done.failure ?? null).toBeNull();
      expect(fake.inputsOf('ReloadTables').filter((i) => String(i.ReplicationTaskArn).includes(s.name.toUpperCase())).map((i) => i.TablesToReload)).toEqual([
        [{ SchemaName: 'shop', TableName: 'Order Lines' }],
      ]);
      await expectSameRows(s);
      // The workers read the source's URL from Secrets Manager; DMS got its parts, no one else.
      expect(fake.inputsOf('GetSecretValue').map((i) => i.SecretId)).toContain(arn);
      expect(fake.inputsOf('CreateEndpoint').find((i) => i.EndpointType === 'source')).toMatchObject({ Password: requiredEnv('DBFERRY_TEST_SOURCE_PASSWORD') });
      expect(JSON.stringify(done)).not.toContain(requiredEnv('DBFERRY_TEST_SOURCE_PASSWORD'));
    } finally {
      await dropDatabase('source', s.sourceDb);
      await dropDatabase('target', s.targetDb);
    }
  });

  it('a row DMS lost while reporting the table completed: validation over pg says different', async () => {
    const s = await scenario('awslost');
    const plan = awsPlan({ name: s.name, mode: 'full-load', source: `{ engine: postgres, url: ${urls(s).source} }`, target: `{ engine: postgres, url: ${urls(s).target} }` });
    // A child table's row: a parent's would already fail its foreign key's VALIDATE.
    fake.loseRowOf = 'shop.Order Lines';
    fake.slowLoadMs = 3000;
    try {
      const starting = started(['start', plan, '--wait', '--json']);
      // While DMS loads, status shows its progress (from the activity's heartbeat).
      const loading = await untilStatus(s.name, (x) => (x.live ?? []).some((l: { activity?: string; loading?: unknown[] }) => l.activity === 'managedLoad' && l.loading?.length), env, 60_000);
      expect(loading.live.find((l: { activity?: string }) => l.activity === 'managedLoad')).toMatchObject({ tablesTotal: 2, loading: [{ table: expect.stringMatching(/^shop\./), rows: 0 }] });
      const start = await starting;
      expect({ code: start.code, err: start.code === 3 ? '' : start.stdout + start.stderr }).toEqual({ code: 3, err: '' });
      const paused = json(start);
      expect(paused.failure).toMatchObject({ step: 'validate', type: 'ValidationMismatch', message: expect.stringContaining('shop.Order Lines (source 200 rows, target 199') });
      expect(paused.tables.map((t: { name: string; fullLoadRows: string; validation: string }) => [t.name, t.fullLoadRows, t.validation])).toEqual([
        ['shop.Order Lines', '200', 'different'],
        ['shop.customers', '40', 'equal'],
      ]);
    } finally {
      await dropDatabase('source', s.sourceDb);
      await dropDatabase('target', s.targetDb);
    }
  });

  it('an endpoint DMS cannot reach pauses with its message; abort, then cleanup leaves nothing in AWS', async () => {
    const s = await scenario('awsabort');
    const plan = awsPlan({ name: s.name, mode: 'full-load-and-cdc', source: `{ engine: postgres, url: ${urls(s).source} }`, target: `{ engine: postgres, url: ${urls(s).target} }` });
    fake.failConnectionTest = { endpointId: `dbferry-${s.name}-target`, message: 'Test connection failed for endpoint: could not connect to server: Connection timed out' };
    try {
      const start = await started(['start', plan, '--wait', '--json']);
      expect({ code: start.code, err: start.code === 3 ? '' : start.stdout + start.stderr }).toEqual({ code: 3, err: '' });
      expect(json(start).failure).toMatchObject({ type: 'DmsEndpointTestFailed', message: expect.stringContaining('Connection timed out') });
      expect(fake.names()).not.toContain('CreateReplicationTask');
      const abort = await started(['abort', s.name, '--reason', 'network not ready']);
      expect(abort.code).toBe(0);
      await untilStatus(s.name, (x) => x.phase === 'aborted', env);
      const cleaned = await started(['cleanup', s.name, '--json']);
      expect({ code: cleaned.code, err: cleaned.stderr }).toEqual({ code: 0, err: '' });
      expect(json(cleaned).dropped).toEqual(expect.arrayContaining([`DMS source endpoint dbferry-${s.name}-source`, `DMS replication instance ri-${s.name}`]));
      expect(fake.leftovers().filter((x) => x.includes(s.name))).toEqual([]);
    } finally {
      await dropDatabase('source', s.sourceDb);
      await dropDatabase('target', s.targetDb);
    }
  });

  describe('MySQL (MariaDB) → PostgreSQL with DMS: tables from dbferry’s converted schema, key redesign, CDC under writes', () => {
    let maria: MariaSource | undefined;
    beforeAll(async () => {
      maria = await startMariaSource();
    }, 120_000);
    afterAll(async () => {
      await maria?.stop();
    });

    it('surrogate keys and new foreign keys stay right while DMS applies the changes; only the URL’s database is selected', async () => {
      const my = maria!.my;
      const exec: Exec = async (sql, params) => {
        const [rows] = await my.query({ sql, values: params ?? [], rowsAsArray: true } as never);
        return Array.isArray(rows) ? (rows as unknown[][]) : [];
      };
      await my.query('CREATE DATABASE shop; CREATE DATABASE other; CREATE TABLE other.not_mine (id int PRIMARY KEY)');
      for (const sql of createTablesSql({ schema: 'shop' })) await my.query(sql);
      await seed(exec);
      const name = uniqueName('awsmy').replace(/_/g, '-');
      const targetDb = uniqueName('awsmy_tgt');
      const tgt = serverUrl('target', targetDb);
      const key = name.replace(/-/g, '_').toUpperCase();
      process.env[`SRC_${key}`] = maria!.maria.url('shop');
      process.env[`TGT_${key}`] = tgt;
      const plan = awsPlan({ name, mode: 'full-load-and-cdc', source: `{ engine: mysql, url: env:SRC_${key} }`, target: `{ engine: postgres, url: env:TGT_${key} }`, extra: KEYS_PLAN, sns: true });
      try {
        const start = await started(['start', plan, '--wait', '--json']);
        expect({ code: start.code, err: start.code === 0 ? '' : start.stdout + start.stderr }).toEqual({ code: 0, err: '' });
        // A MySQL endpoint names no database (the selection rules do); the target is written as a replica.
        expect(fake.inputsOf('CreateEndpoint').map((i) => [i.EndpointType, i.EngineName, i.DatabaseName, (i.PostgreSQLSettings as { AfterConnectScript?: string } | undefined)?.AfterConnectScript])).toEqual(
          expect.arrayContaining([
            ['source', 'mysql', undefined, undefined],
            ['target', 'postgres', targetDb, 'SET session_replication_role = replica'],
          ]),
        );
        expect(JSON.parse(fake.inputsOf('CreateReplicationTask')[0]!.TableMappings as string).rules).toEqual([
          expect.objectContaining({ 'rule-action': 'include', 'object-locator': { 'schema-name': 'shop', 'table-name': '%' } }),
        ]);
        // Keys (the surrogate key included) were there before DMS applied a change.
        await waitFor('the fake DMS to look at the target on resume', async () => fake.keysWhenResumed !== undefined);
        expect(fake.keysWhenResumed).toEqual({ 'shop.order_items': true, 'shop.orders': true, 'shop.payments': true });
        const loaded = await keyFacts(tgt);
        expect(loaded.wrongLinks).toEqual({ order_items: 0, payments: 0 });
        expect(loaded.linked).toEqual({ order_items: 1200, payments: 400 });
        const idsBefore = await orderIds(tgt);

        // An application writes: orders with items, items before their order, moves, deletes, renames.
        const workload = startWorkload(exec, { rounds: 150 });
        await waitFor('150 source transactions', async () => workload.rounds() >= 150, { timeoutMs: 120_000 });
        await workload.stop();
        await untilStatus(name, (x) => x.lag?.caughtUp === true, env);
        const cut = await started(['cutover', name, '--wait', '--json']);
        expect({ code: cut.code, err: cut.code === 0 ? '' : cut.stdout + cut.stderr + (await started(['status', name, '--json'])).stdout }).toEqual({ code: 0, err: '' });
        const report = json(cut);
        expect(report.validation.tables.map((t: { table: string; equal: boolean }) => [t.table, t.equal])).toEqual([
          ['shop.order_items', true],
          ['shop.orders', true],
          ['shop.payments', true],
        ]);
        for (const table of ['orders', 'order_items', 'payments']) expect({ table, rows: await targetRows(tgt, table) }).toEqual({ table, rows: await sourceRows(exec, table) });
        const facts = await keyFacts(tgt);
        expect(facts.wrongLinks).toEqual({ order_items: 0, payments: 0 });
        expect(facts.distinctIds).toBe(true);
        expect(facts.constraints).toEqual(KEY_CONSTRAINTS);
        // DMS updates a row in place: an order it did not delete keeps its surrogate key.
        const idsAfter = await orderIds(tgt);
        const kept = [...idsBefore].filter(([k]) => idsAfter.has(k));
        expect(kept.length).toBeGreaterThan(100);
        expect(kept.filter(([k, id]) => idsAfter.get(k) !== id)).toEqual([]);
        // The server's other database is not the migration's.
        const schemas = await withClient(tgt, (c) => c.query(`SELECT nspname FROM pg_namespace WHERE nspname = 'other'`));
        expect(schemas.rows).toEqual([]);
      } finally {
        await dropDatabase('target', targetDb);
      }
    });

    it('mode cdc: a DMS task of type cdc from the plan’s binlog position into a target loaded some other way', async () => {
      const my = maria!.my;
      const name = uniqueName('awscdc').replace(/_/g, '-');
      const targetDb = uniqueName('awscdc_tgt');
      const tgt = await createDatabase('target', targetDb);
      await my.query(`CREATE DATABASE cdcshop; CREATE TABLE cdcshop.items (id int PRIMARY KEY, name varchar(50) NOT NULL, price decimal(10,2));
                      INSERT INTO cdcshop.items VALUES (1, 'one', 1.50), (2, 'two', 2.00), (3, 'three', NULL)`);
      // Loaded some other way, as of this position.
      await withClient(tgt, (c) =>
        c.query(`CREATE SCHEMA cdcshop; CREATE TABLE cdcshop.items (id int PRIMARY KEY, name varchar(50) NOT NULL, price numeric(10,2));
                 INSERT INTO cdcshop.items VALUES (1, 'one', 1.50), (2, 'two', 2.00), (3, 'three', NULL)`),
      );
      const [status] = (await my.query('SHOW MASTER STATUS')) as unknown as [Array<{ File: string; Position: number }>];
      const position = `${status[0]!.File}:${status[0]!.Position}`;
      // Written after that position, before the task starts: DMS must bring it over.
      await my.query(`INSERT INTO cdcshop.items VALUES (4, 'four', 4.25); UPDATE cdcshop.items SET name = 'TWO' WHERE id = 2; DELETE FROM cdcshop.items WHERE id = 3`);
      const key = name.replace(/-/g, '_').toUpperCase();
      process.env[`SRC_${key}`] = maria!.maria.url('cdcshop');
      process.env[`TGT_${key}`] = tgt;
      const plan = awsPlan({ name, mode: 'cdc', source: `{ engine: mysql, url: env:SRC_${key} }`, target: `{ engine: postgres, url: env:TGT_${key} }`, extra: `cdc: { startPosition: "${position}" }` });
      try {
        const start = await started(['start', plan, '--wait', '--json']);
        expect({ code: start.code, err: start.code === 0 ? '' : start.stdout + start.stderr }).toEqual({ code: 0, err: '' });
        expect(fake.inputsOf('CreateReplicationTask')[0]).toMatchObject({ MigrationType: 'cdc' });
        expect(fake.inputsOf('StartReplicationTask')).toEqual([expect.objectContaining({ StartReplicationTaskType: 'start-replication', CdcStartPosition: position })]);
        await my.query(`INSERT INTO cdcshop.items VALUES (5, 'five', 5.00)`);
        await untilStatus(name, (x) => x.lag?.caughtUp === true, env);
        const cut = await started(['cutover', name, '--wait', '--json']);
        expect({ code: cut.code, err: cut.code === 0 ? '' : cut.stdout + cut.stderr }).toEqual({ code: 0, err: '' });
        expect(json(cut).validation.tables).toEqual([expect.objectContaining({ table: 'cdcshop.items', equal: true, sourceRows: '4', targetRows: '4' })]);
        const rows = await withClient(tgt, (c) => c.query(`SELECT id, name, price::text FROM cdcshop.items ORDER BY id`));
        expect(rows.rows).toEqual([
          { id: 1, name: 'one', price: '1.50' },
          { id: 2, name: 'TWO', price: '2.00' },
          { id: 4, name: 'four', price: '4.25' },
          { id: 5, name: 'five', price: '5.00' },
        ]);
      } finally {
        await dropDatabase('target', targetDb);
      }
    });
  });
});
