/**
 * The DMS resources of a migration — replication instance, certificates, endpoints, task and
 * event subscription — each found by its identifier and adopted, or created tagged with the
 * migration's name. Re-running any of this after a crash finds what the last attempt made:
 * nothing is ever created twice.
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import {
  CreateEndpointCommand,
  CreateEventSubscriptionCommand,
  CreateReplicationInstanceCommand,
  CreateReplicationTaskCommand,
  DescribeCertificatesCommand,
  DescribeConnectionsCommand,
  DescribeEndpointsCommand,
  DescribeEventSubscriptionsCommand,
  DescribeReplicationInstancesCommand,
  DescribeReplicationTasksCommand,
  ImportCertificateCommand,
  ModifyEndpointCommand,
  TestConnectionCommand,
  type Endpoint,
  type ReplicationInstance,
  type ReplicationTask,
  type Tag,
} from '@aws-sdk/client-database-migration-service';
import { CREATED_BY_TAG, dmsMigrationType, dmsNames, dmsSslMode, dmsTableMapping, dmsTaskSettings } from '../../plan/dms-task';
import { FailureType } from '../../plan/failure-types';
import type { Plan } from '../../plan/plan-schema';
import { resolveEndpoint } from '../pg/connection';
import { readsOwnSlot } from './dms-pg-slot';
import { resolveSecret } from '../secrets';
import { awsCall, awsClients, awsFailureCode, failedAsNotFound, pollMs } from './aws-call';

type Side = 'source' | 'target';

const tags = (plan: Plan): Tag[] => [{ Key: CREATED_BY_TAG, Value: plan.name }];

/**
 * Sends a create request. "Already exists" means an earlier attempt made it (its answer was
 * lost, or the worker died before using it): the caller finds and adopts it.
 */
async function create<T>(what: string, send: () => Promise<T>, secrets: string[] = []): Promise<T | undefined> {
  try {
    return await awsCall(what, send, secrets);
  } catch (err) {
    if (/AlreadyExists/.test(awsFailureCode(err))) return undefined;
    throw err;
  }
}

/** Finds a resource, or undefined when AWS says there is none by that identifier. */
async function find<T>(what: string, describe: () => Promise<T | undefined>): Promise<T | undefined> {
  try {
    return await awsCall(what, describe);
  } catch (err) {
    if (failedAsNotFound(err)) return undefined;
    throw err;
  }
}

/** Polls `check` until it returns a value, heartbeating what it waits for; `deadlineMs` bounds the wait. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, deadlineMs: number, progress?: (s: string) => void): Promise<T> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) {
      throw ApplicationFailure.create({ type: FailureType.Transient, message: `${what}: still not done after ${Math.round(deadlineMs / 60_000)} min` });
    }
    progress?.(what);
    await sleep(pollMs());
  }
}

export async function describeInstance(plan: Plan): Promise<ReplicationInstance | undefined> {
  const id = plan.aws!.replicationInstance!.id;
  const r = await find('DescribeReplicationInstances', () =>
    awsClients(plan).dms.send(new DescribeReplicationInstancesCommand({ Filters: [{ Name: 'replication-instance-id', Values: [id] }] })),
  );
  return r?.ReplicationInstances?.[0];
}

/** Adopts the plan's replication instance or creates it, then waits until it is available. */
export async function ensureReplicationInstance(plan: Plan, progress: (s: string) => void): Promise<{ arn: string; created: boolean }> {
  const spec = plan.aws!.replicationInstance!;
  let created = false;
  if (!(await describeInstance(plan))) {
    const r = await create('CreateReplicationInstance', () =>
      awsClients(plan).dms.send(
        new CreateReplicationInstanceCommand({ ReplicationInstanceIdentifier: spec.id, ReplicationInstanceClass: spec.class, PubliclyAccessible: false, Tags: tags(plan) }),
      ),
    );
    created = r !== undefined;
  }
  const ready = await waitFor(
    `replication instance ${spec.id} to be available`,
    async () => {
      const ri = await describeInstance(plan);
      const status = ri?.ReplicationInstanceStatus;
      if (status === 'failed' || status === 'incompatible-network' || status === 'storage-full' || status === 'deleting') {
        throw ApplicationFailure.create({
          type: FailureType.AwsRequestRefused,
          nonRetryable: true,
          message: `replication instance ${spec.id} is ${status}`,
          details: [{ hint: `repair or replace replication instance ${spec.id} (aws.replicationInstance.id), then run dbferry retry` }],
        });
      }
      return status === 'available' && ri?.ReplicationInstanceArn ? ri : undefined;
    },
    60 * 60_000,
    progress,
  );
  return { arn: ready.ReplicationInstanceArn!, created };
}

/** What DMS needs of one side: server, port, database, user and password from the side's URL. */
async function endpointSettings(plan: Plan, side: Side) {
  const ep = plan[side];
  // The target's URL as the workers use it (an RDS instance's endpoint put in: aws.rds).
  const url = new URL(side === 'target' ? (await resolveEndpoint(plan, 'target')).url : await resolveSecret(ep.url, `${side}.url`));
  const password = decodeURIComponent(url.password);
  const engine = ep.engine === 'mysql' ? (url.protocol === 'mariadb:' ? 'mariadb' : 'mysql') : 'postgres';
  const database = decodeURIComponent(url.pathname.replace(/^\//, '')) || 'postgres';
  return {
    EngineName: engine,
    ServerName: url.hostname,
    Port: Number(url.port || (ep.engine === 'mysql' ? 3306 : 5432)),
    Username: decodeURIComponent(url.username),
    Password: password,
    // A MySQL endpoint names no database (DMS: "don't specify DatabaseName"): the task's
    // selection rules name it as the schema.
    ...(ep.engine === 'postgres' ? { DatabaseName: database } : {}),
    SslMode: dmsSslMode(ep.tls),
    // DMS writes the target as a replica: foreign-key actions and the application's triggers
    // already happened on the source (the native applier does the same); dbferry's own
    // key-redesign triggers are ENABLE ALWAYS and still fire.
    ...(side === 'target' ? { PostgreSQLSettings: { AfterConnectScript: 'SET session_replication_role = replica' } } : {}),
    // Mode cdc from PostgreSQL: the slot dbferry made, which DMS starts reading at the plan's position.
    ...(side === 'source' && readsOwnSlot(plan) ? { PostgreSQLSettings: { SlotName: plan.cdc.slot, PluginName: 'test-decoding' as const } } : {}),
    secrets: [password, url.password].filter(Boolean),
  };
}

async function ensureCertificate(plan: Plan, side: Side): Promise<string | undefined> {
  const tls = plan[side].tls;
  if (!tls?.ca || tls.mode === 'disable') return undefined;
  const id = side === 'source' ? dmsNames(plan).sourceCertificate : dmsNames(plan).targetCertificate;
  const { dms } = awsClients(plan);
  const found = await find('DescribeCertificates', () => dms.send(new DescribeCertificatesCommand({ Filters: [{ Name: 'certificate-id', Values: [id] }] })));
  const arn = found?.Certificates?.[0]?.CertificateArn;
  if (arn) return arn;
  const ca = await resolveSecret(tls.ca, `${side}.tls.ca`);
  // A `file:` reference resolves to the PEM's content; an inline value may be a path (as for the workers' own connections).
  const pem = ca.includes('-----BEGIN') ? ca : await readFile(ca, 'utf8');
  const r = await create('ImportCertificate', () => dms.send(new ImportCertificateCommand({ CertificateIdentifier: id, CertificatePem: pem, Tags: tags(plan) })));
  if (r?.Certificate?.CertificateArn) return r.Certificate.CertificateArn;
  const again = await find('DescribeCertificates', () => dms.send(new DescribeCertificatesCommand({ Filters: [{ Name: 'certificate-id', Values: [id] }] })));
  return again!.Certificates![0]!.CertificateArn!;
}

export async function describeEndpoint(plan: Plan, side: Side): Promise<Endpoint | undefined> {
  const id = side === 'source' ? dmsNames(plan).sourceEndpoint : dmsNames(plan).targetEndpoint;
  const r = await find('DescribeEndpoints', () => awsClients(plan).dms.send(new DescribeEndpointsCommand({ Filters: [{ Name: 'endpoint-id', Values: [id] }] })));
  return r?.Endpoints?.[0];
}

/**
 * The side's endpoint, with its SSL mode and CA. An adopted endpoint is brought in line with
 * the plan (a rotated password, a new SSL mode): the plan is what the operator last said.
 */
export async function ensureEndpoint(plan: Plan, side: Side): Promise<string> {
  const id = side === 'source' ? dmsNames(plan).sourceEndpoint : dmsNames(plan).targetEndpoint;
  const { secrets, ...settings } = await endpointSettings(plan, side);
  const certificate = await ensureCertificate(plan, side);
  const { dms } = awsClients(plan);
  const existing = await describeEndpoint(plan, side);
  const common = { ...settings, ...(certificate ? { CertificateArn: certificate } : {}) };
  if (existing?.EndpointArn) {
    await awsCall('ModifyEndpoint', () => dms.send(new ModifyEndpointCommand({ EndpointArn: existing.EndpointArn!, ...common })), secrets);
    return existing.EndpointArn;
  }
  const r = await create(
    'CreateEndpoint',
    () => dms.send(new CreateEndpointCommand({ EndpointIdentifier: id, EndpointType: side, ...common, Tags: tags(plan) })),
    secrets,
  );
  return r?.Endpoint?.EndpointArn ?? (await describeEndpoint(plan, side))!.EndpointArn!;
}

/** Tests the endpoint from the replication instance and waits for DMS's verdict. */
export async function testEndpoint(plan: Plan, side: Side, instanceArn: string, endpointArn: string, progress: (s: string) => void): Promise<void> {
  const { dms } = awsClients(plan);
  try {
    await awsCall('TestConnection', () => dms.send(new TestConnectionCommand({ ReplicationInstanceArn: instanceArn, EndpointArn: endpointArn })));
  } catch (err) {
    // A test already running (a retried step) is waited for like ours.
    if (awsFailureCode(err) !== 'InvalidResourceStateFault') throw err;
  }
  const outcome = await waitFor(
    `the DMS connection test of the ${side} endpoint`,
    async () => {
      const r = await awsCall('DescribeConnections', () =>
        dms.send(
          new DescribeConnectionsCommand({
            Filters: [
              { Name: 'endpoint-arn', Values: [endpointArn] },
              { Name: 'replication-instance-arn', Values: [instanceArn] },
            ],
          }),
        ),
      );
      const c = r.Connections?.[0];
      return c?.Status === 'successful' || c?.Status === 'failed' ? c : undefined;
    },
    15 * 60_000,
    progress,
  );
  if (outcome.Status === 'failed') {
    throw ApplicationFailure.create({
      type: FailureType.DmsEndpointTestFailed,
      nonRetryable: true,
      message: `DMS cannot connect to the ${side} (${outcome.EndpointIdentifier ?? endpointArn}) from replication instance ${plan.aws!.replicationInstance!.id}: ${outcome.LastFailureMessage ?? 'no message'}`,
      details: [{ endpoint: side, hint: `check the ${side}'s network access from the replication instance, its credentials and ${side}.tls, then run dbferry retry` }],
    });
  }
}

export async function describeTask(plan: Plan, withSettings = false): Promise<ReplicationTask | undefined> {
  const id = dmsNames(plan).task;
  const r = await find('DescribeReplicationTasks', () =>
    awsClients(plan).dms.send(new DescribeReplicationTasksCommand({ Filters: [{ Name: 'replication-task-id', Values: [id] }], WithoutSettings: !withSettings })),
  );
  return r?.ReplicationTasks?.[0];
}

/**
 * A task found under this migration's identifier must be the one this plan makes (an earlier
 * migration of the same name, aborted and not cleaned up, may have left another): its type,
 * instance, endpoints and table mapping are compared, and a different one is refused.
 */
function refuseOtherTask(plan: Plan, t: ReplicationTask, want: { instance: string; source: string; target: string; mapping: string }): void {
  const differences: string[] = [];
  if (t.MigrationType !== dmsMigrationType(plan.mode)) differences.push(`migration type ${t.MigrationType} (the plan's: ${dmsMigrationType(plan.mode)})`);
  if (t.ReplicationInstanceArn && t.ReplicationInstanceArn !== want.instance) differences.push('another replication instance');
  if (t.SourceEndpointArn && t.SourceEndpointArn !== want.source) differences.push('another source endpoint');
  if (t.TargetEndpointArn && t.TargetEndpointArn !== want.target) differences.push('another target endpoint');
  if (t.TableMappings && !sameJson(t.TableMappings, want.mapping)) differences.push('another table mapping');
  if (differences.length === 0) return;
  throw ApplicationFailure.create({
    type: FailureType.TargetObjectConflict,
    nonRetryable: true,
    message: `DMS task ${dmsNames(plan).task} exists with ${differences.join(', ')}: left by an earlier migration named ${plan.name}?`,
    details: [{ hint: `delete it (dbferry cleanup ${plan.name} for the earlier run, or in the console), then dbferry retry` }],
  });
}

function sameJson(a: string, b: string): boolean {
  try {
    return JSON.stringify(JSON.parse(a)) === JSON.stringify(JSON.parse(b));
  } catch {
    return a === b;
  }
}

/** The task, adopted or created (DO_NOTHING, the plan's mapping as given), once DMS has it ready. */
export async function ensureTask(
  plan: Plan,
  arns: { instance: string; source: string; target: string; mysqlDatabase?: string },
  progress: (s: string) => void,
): Promise<ReplicationTask> {
  const mapping = dmsTableMapping(plan.tables, arns.mysqlDatabase);
  const existing = await describeTask(plan, true);
  if (existing) refuseOtherTask(plan, existing, { ...arns, mapping });
  else {
    await create('CreateReplicationTask', () =>
      awsClients(plan).dms.send(
        new CreateReplicationTaskCommand({
          ReplicationTaskIdentifier: dmsNames(plan).task,
          ReplicationInstanceArn: arns.instance,
          SourceEndpointArn: arns.source,
          TargetEndpointArn: arns.target,
          MigrationType: dmsMigrationType(plan.mode),
          TableMappings: mapping,
          ReplicationTaskSettings: dmsTaskSettings(plan.mode),
          Tags: tags(plan),
        }),
      ),
    );
  }
  return waitFor(
    `replication task ${dmsNames(plan).task} to be ready`,
    async () => {
      const t = await describeTask(plan);
      return t && t.Status !== 'creating' ? t : undefined;
    },
    30 * 60_000,
    progress,
  );
}

/**
 * DMS's own event subscription for the task's failures and state changes, to the plan's SNS
 * topic: created once the task exists and before it starts, so no event of it is missed.
 */
export async function ensureEventSubscription(plan: Plan): Promise<boolean> {
  const topic = plan.aws?.snsTopicArn;
  if (!topic) return false;
  const name = dmsNames(plan).subscription;
  const { dms } = awsClients(plan);
  const found = await find('DescribeEventSubscriptions', () => dms.send(new DescribeEventSubscriptionsCommand({ SubscriptionName: name })));
  if (found?.EventSubscriptionsList?.length) return true;
  await create('CreateEventSubscription', () =>
    dms.send(
      new CreateEventSubscriptionCommand({
        SubscriptionName: name,
        SnsTopicArn: topic,
        SourceType: 'replication-task',
        SourceIds: [dmsNames(plan).task],
        EventCategories: ['failure', 'state change'],
        Enabled: true,
        Tags: tags(plan),
      }),
    ),
  );
  return true;
}
