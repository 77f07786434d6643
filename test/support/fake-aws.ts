/**
 * A fake AWS at the SDK boundary (aws-sdk-client-mock): DMS, CloudWatch and SNS answer from an
 * in-memory model of their resources, and the fake DMS really moves rows — it connects to the
 * endpoints it was given (server, port, credentials, SSL mode, imported CA) with `pg`, copies
 * the selected tables on start, and mirrors the source's changes during CDC. So a test sees
 * what a user would: the target's rows, the commands dbferry sent, and the order it sent them.
 * Like DMS with TargetTablePrepMode DO_NOTHING, it never empties a table before loading it.
 */
import {
  CreateEndpointCommand,
  CreateEventSubscriptionCommand,
  CreateReplicationInstanceCommand,
  CreateReplicationTaskCommand,
  DatabaseMigrationServiceClient,
  DeleteCertificateCommand,
  DeleteEndpointCommand,
  DeleteEventSubscriptionCommand,
  DeleteReplicationInstanceCommand,
  DeleteReplicationTaskCommand,
  DescribeCertificatesCommand,
  DescribeConnectionsCommand,
  DescribeEndpointsCommand,
  DescribeEventSubscriptionsCommand,
  DescribeReplicationInstancesCommand,
  DescribeReplicationTasksCommand,
  DescribeTableStatisticsCommand,
  ImportCertificateCommand,
  InvalidResourceStateFault,
  ListTagsForResourceCommand,
  ModifyEndpointCommand,
  ReloadTablesCommand,
  ResourceAlreadyExistsFault,
  ResourceNotFoundFault,
  StartReplicationTaskCommand,
  StopReplicationTaskCommand,
  TestConnectionCommand,
  type CreateEndpointMessage,
  type CreateReplicationTaskMessage,
  type Tag,
} from '@aws-sdk/client-database-migration-service';
import { CloudWatchClient, GetMetricStatisticsCommand } from '@aws-sdk/client-cloudwatch';
import { PublishCommand, SNSClient, type PublishCommandInput } from '@aws-sdk/client-sns';
import { GetSecretValueCommand, ResourceNotFoundException, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { CreateDBInstanceCommand, DBInstanceAlreadyExistsFault, DBInstanceNotFoundFault, DescribeDBInstancesCommand, RDSClient, type CreateDBInstanceMessage } from '@aws-sdk/client-rds';
import { mockClient } from 'aws-sdk-client-mock';
import { createConnection as createMysql } from 'mysql2/promise';
import { Client } from 'pg';

interface Resource {
  arn: string;
  tags: Tag[];
}
interface Instance extends Resource {
  id: string;
  status: string;
}
interface FakeEndpoint extends Resource {
  input: CreateEndpointMessage;
}
interface TableStat {
  schema: string;
  table: string;
  state: string;
  fullLoadRows: number;
  inserts: number;
  updates: number;
  deletes: number;
  /** The source rows as DMS last saw them, by key: CDC applies what changed since. */
  seen: Map<string, string>;
}
interface Task extends Resource {
  id: string;
  input: CreateReplicationTaskMessage;
  status: string;
  stopReason?: string;
  lastFailure?: string;
  startDate?: Date;
  cdc: boolean;
  tables: Map<string, TableStat>;
  /** The load or reload running in the background. */
  busy?: Promise<void>;
  /** What a start asked for, begun when DMS is next looked at (a start goes through `starting`). */
  pending?: () => Promise<void>;
  /** The load is over but tables are suspended: the task runs on until they are reloaded. */
  finishWhenReloaded?: boolean;
  /** The CdcStartPosition of the last start. */
  cdcStart?: string;
}

/** One command as dbferry sent it: its name and input. */
export interface SentCommand {
  name: string;
  input: Record<string, unknown>;
}

const ACCOUNT = '123456789012';
type Stub = ReturnType<typeof mockClient>;
const meta = { $metadata: {} };

export class FakeAws {
  readonly sent: SentCommand[] = [];
  readonly instances = new Map<string, Instance>();
  readonly endpoints = new Map<string, FakeEndpoint>();
  readonly certificates = new Map<string, Resource & { pem: string }>();
  readonly tasks = new Map<string, Task>();
  readonly subscriptions = new Map<string, Record<string, unknown>>();
  readonly connections = new Map<string, { status: string; message?: string; endpointId: string }>();
  readonly published: PublishCommandInput[] = [];
  /** RDS instances: their creation request (undefined for one that existed before) and status. */
  readonly rdsInstances = new Map<string, { input?: CreateDBInstanceMessage; status: string; engine: string }>();
  /** Secrets Manager: secret string by ARN. */
  readonly secretValues = new Map<string, string>();
  /** Where every fake RDS instance answers: a real test server. */
  rdsAt?: { host: string; port: number };

  // ---- injected faults ----
  /** Commands whose next call is throttled (ThrottlingException) once. */
  readonly throttleOnce = new Set<string>();
  /** Commands that do their work, then lose their answer once (the connection resets). */
  readonly loseAnswerOnce = new Set<string>();
  /** The next load fails after its first table, with this message (the task ends `failed`). */
  failLoadOnce?: string;
  /** This table (schema.table) loads half its rows, then goes to Table error, once. */
  tableErrorOnce?: string;
  /** DMS's CDC latency as CloudWatch reports it. */
  latencySeconds = 0;
  /** Each table's full load takes at least this long (a load slow enough to watch). */
  slowLoadMs = 0;
  /** This table (schema.table) loses one row on the way and says nothing (Table completed): DMS's word is not proof. */
  loseRowOf?: string;
  /** The connection test of the endpoint with this id fails with the message. */
  failConnectionTest?: { endpointId: string; message: string };
  /** What the target looked like when CDC was first resumed: table → has a primary key. */
  keysWhenResumed?: Record<string, boolean>;

  #seq = 0;
  readonly #stubs = [mockClient(DatabaseMigrationServiceClient), mockClient(CloudWatchClient), mockClient(SNSClient), mockClient(RDSClient), mockClient(SecretsManagerClient)];

  constructor() {
    const [dms, cw, sns, rds, sm] = this.#stubs as ReturnType<typeof mockClient>[] as [Stub, Stub, Stub, Stub, Stub];
    const on = (stub: Stub, cmd: { name: string }, fn: (input: any) => unknown) =>
      stub.on(cmd as never).callsFake(async (input: Record<string, unknown>) => this.#answer(cmd.name.replace(/Command$/, ''), input, fn));
    on(dms, CreateReplicationInstanceCommand, (i) => this.#createInstance(i));
    on(dms, DescribeReplicationInstancesCommand, (i) => this.#describeInstances(i));
    on(dms, DeleteReplicationInstanceCommand, (i) => this.#delete(this.instances, i.ReplicationInstanceArn));
    on(dms, ImportCertificateCommand, (i) => this.#importCertificate(i));
    on(dms, DescribeCertificatesCommand, (i) => this.#describeCertificates(i));
    on(dms, DeleteCertificateCommand, (i) => this.#delete(this.certificates, i.CertificateArn));
    on(dms, CreateEndpointCommand, (i) => this.#createEndpoint(i));
    on(dms, ModifyEndpointCommand, (i) => this.#modifyEndpoint(i));
    on(dms, DescribeEndpointsCommand, (i) => this.#describeEndpoints(i));
    on(dms, DeleteEndpointCommand, (i) => this.#delete(this.endpoints, i.EndpointArn));
    on(dms, TestConnectionCommand, (i) => this.#testConnection(i));
    on(dms, DescribeConnectionsCommand, (i) => this.#describeConnections(i));
    on(dms, CreateReplicationTaskCommand, (i) => this.#createTask(i));
    on(dms, DescribeReplicationTasksCommand, (i) => this.#describeTasks(i));
    on(dms, StartReplicationTaskCommand, (i) => this.#startTask(i));
    on(dms, StopReplicationTaskCommand, (i) => this.#stopTask(i));
    on(dms, ReloadTablesCommand, (i) => this.#reloadTables(i));
    on(dms, DeleteReplicationTaskCommand, (i) => this.#deleteTask(i));
    on(dms, DescribeTableStatisticsCommand, (i) => this.#tableStatistics(i));
    on(dms, CreateEventSubscriptionCommand, (i) => this.#createSubscription(i));
    on(dms, DescribeEventSubscriptionsCommand, (i) => this.#describeSubscriptions(i));
    on(dms, DeleteEventSubscriptionCommand, (i) => this.#deleteSubscription(i));
    on(dms, ListTagsForResourceCommand, (i) => ({ TagList: this.#byArn(i.ResourceArn)?.tags ?? [] }));
    on(cw, GetMetricStatisticsCommand, (i) => this.#latency(i));
    on(sm, GetSecretValueCommand, (i: { SecretId: string }) => {
      const v = this.secretValues.get(i.SecretId);
      if (v === undefined) throw new ResourceNotFoundException({ message: "Secrets Manager can't find the specified secret.", ...meta });
      return { ARN: i.SecretId, SecretString: v };
    });
    on(rds, CreateDBInstanceCommand, (i: CreateDBInstanceMessage) => {
      if (this.rdsInstances.has(i.DBInstanceIdentifier!)) throw new DBInstanceAlreadyExistsFault({ message: 'exists', ...meta });
      this.rdsInstances.set(i.DBInstanceIdentifier!, { input: i, status: 'creating', engine: i.Engine! });
      return { DBInstance: { DBInstanceIdentifier: i.DBInstanceIdentifier, DBInstanceStatus: 'creating' } };
    });
    on(rds, DescribeDBInstancesCommand, (i: { DBInstanceIdentifier: string }) => {
      const r = this.rdsInstances.get(i.DBInstanceIdentifier);
      if (!r) throw new DBInstanceNotFoundFault({ message: `DBInstance ${i.DBInstanceIdentifier} not found.`, ...meta });
      const view = {
        DBInstanceIdentifier: i.DBInstanceIdentifier,
        DBInstanceStatus: r.status,
        Engine: r.engine,
        // An instance being created has no endpoint yet.
        ...(r.status === 'available' ? { Endpoint: { Address: this.rdsAt!.host, Port: this.rdsAt!.port } } : {}),
      };
      // Available from the second look on.
      r.status = 'available';
      return { DBInstances: [view] };
    });
    on(sns, PublishCommand, (i) => {
      this.published.push(i);
      return { MessageId: `m-${++this.#seq}` };
    });
  }

  /** A replication instance that exists before the migration (adopted, not tagged by dbferry). */
  addInstance(id: string): void {
    this.instances.set(id, { id, arn: this.#arn('rep', id), status: 'available', tags: [] });
  }

  restore(): void {
    for (const s of this.#stubs) s.restore();
  }

  /** Names of the commands sent, in order. */
  names(): string[] {
    return this.sent.map((c) => c.name);
  }

  inputsOf(name: string): Record<string, unknown>[] {
    return this.sent.filter((c) => c.name === name).map((c) => c.input);
  }

  /** Everything the fake still holds (after cleanup: what was left behind). */
  leftovers(): string[] {
    return [
      ...[...this.instances.keys()].map((k) => `instance ${k}`),
      ...[...this.endpoints.keys()].map((k) => `endpoint ${k}`),
      ...[...this.certificates.keys()].map((k) => `certificate ${k}`),
      ...[...this.tasks.keys()].map((k) => `task ${k}`),
      ...[...this.subscriptions.keys()].map((k) => `subscription ${k}`),
    ];
  }

  async idle(): Promise<void> {
    await Promise.all([...this.tasks.values()].map((t) => t.busy ?? Promise.resolve()));
  }

  // ---- the machinery ----

  async #answer(name: string, input: Record<string, unknown>, fn: (input: any) => unknown): Promise<unknown> {
    this.sent.push({ name, input });
    if (this.throttleOnce.delete(name)) throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', ...meta });
    const out = await fn(input);
    if (this.loseAnswerOnce.delete(name)) throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    return out;
  }

  #arn(kind: string, id: string): string {
    return `arn:aws:dms:eu-west-1:${ACCOUNT}:${kind}:${id.toUpperCase()}${++this.#seq}`;
  }

  #byArn(arn: string): Resource | undefined {
    for (const m of [this.instances, this.endpoints, this.certificates, this.tasks] as Map<string, Resource>[]) {
      for (const r of m.values()) if (r.arn === arn) return r;
    }
    return undefined;
  }

  #delete(map: Map<string, Resource>, arn: string) {
    for (const [k, r] of map) {
      if (r.arn === arn) {
        if (map === (this.endpoints as Map<string, Resource>) && [...this.tasks.values()].some((t) => t.input.SourceEndpointArn === arn || t.input.TargetEndpointArn === arn)) {
          throw new InvalidResourceStateFault({ message: 'endpoint is used by a task', ...meta });
        }
        map.delete(k);
        return {};
      }
    }
    throw new ResourceNotFoundFault({ message: `no resource ${arn}`, ...meta });
  }

  #filtered<T>(items: T[], what: string): T[] {
    if (items.length === 0) throw new ResourceNotFoundFault({ message: `No ${what} found matching provided filters`, ...meta });
    return items;
  }

  static #filter(input: { Filters?: { Name: string; Values: string[] }[] }, name: string): string[] | undefined {
    return input.Filters?.find((f) => f.Name === name)?.Values;
  }

  #createInstance(i: { ReplicationInstanceIdentifier: string; Tags?: Tag[] }) {
    if (this.instances.has(i.ReplicationInstanceIdentifier)) throw new ResourceAlreadyExistsFault({ message: 'exists', ...meta });
    const r: Instance = { id: i.ReplicationInstanceIdentifier, arn: this.#arn('rep', i.ReplicationInstanceIdentifier), status: 'creating', tags: i.Tags ?? [] };
    this.instances.set(r.id, r);
    return { ReplicationInstance: this.#instanceView(r) };
  }

  #instanceView(r: Instance) {
    return { ReplicationInstanceIdentifier: r.id, ReplicationInstanceArn: r.arn, ReplicationInstanceStatus: r.status };
  }

  #describeInstances(i: { Filters?: { Name: string; Values: string[] }[] }) {
    const ids = FakeAws.#filter(i, 'replication-instance-id');
    const found = [...this.instances.values()].filter((r) => !ids || ids.includes(r.id));
    const view = found.map((r) => this.#instanceView(r));
    // Available from the second look on.
    for (const r of found) if (r.status === 'creating') r.status = 'available';
    return { ReplicationInstances: this.#filtered(view, 'replication instances') };
  }

  #importCertificate(i: { CertificateIdentifier: string; CertificatePem: string; Tags?: Tag[] }) {
    if (this.certificates.has(i.CertificateIdentifier)) throw new ResourceAlreadyExistsFault({ message: 'exists', ...meta });
    const r = { arn: this.#arn('cert', i.CertificateIdentifier), pem: i.CertificatePem, tags: i.Tags ?? [] };
    this.certificates.set(i.CertificateIdentifier, r);
    return { Certificate: { CertificateIdentifier: i.CertificateIdentifier, CertificateArn: r.arn } };
  }

  #describeCertificates(i: { Filters?: { Name: string; Values: string[] }[] }) {
    const ids = FakeAws.#filter(i, 'certificate-id');
    const found = [...this.certificates].filter(([k]) => !ids || ids.includes(k)).map(([k, r]) => ({ CertificateIdentifier: k, CertificateArn: r.arn }));
    return { Certificates: this.#filtered(found, 'certificates') };
  }

  #createEndpoint(i: CreateEndpointMessage) {
    if (this.endpoints.has(i.EndpointIdentifier!)) throw new ResourceAlreadyExistsFault({ message: 'exists', ...meta });
    const r: FakeEndpoint = { arn: this.#arn('endpoint', i.EndpointIdentifier!), input: i, tags: i.Tags ?? [] };
    this.endpoints.set(i.EndpointIdentifier!, r);
    return { Endpoint: { EndpointIdentifier: i.EndpointIdentifier, EndpointArn: r.arn } };
  }

  #modifyEndpoint(i: CreateEndpointMessage & { EndpointArn: string }) {
    const r = [...this.endpoints.values()].find((e) => e.arn === i.EndpointArn);
    if (!r) throw new ResourceNotFoundFault({ message: 'no endpoint', ...meta });
    const { EndpointArn: _, ...rest } = i;
    r.input = { ...r.input, ...rest };
    return { Endpoint: { EndpointIdentifier: r.input.EndpointIdentifier, EndpointArn: r.arn } };
  }

  #describeEndpoints(i: { Filters?: { Name: string; Values: string[] }[] }) {
    const ids = FakeAws.#filter(i, 'endpoint-id');
    const found = [...this.endpoints].filter(([k]) => !ids || ids.includes(k)).map(([k, r]) => ({ EndpointIdentifier: k, EndpointArn: r.arn, EndpointType: r.input.EndpointType }));
    return { Endpoints: this.#filtered(found, 'endpoints') };
  }

  #testConnection(i: { EndpointArn: string; ReplicationInstanceArn: string }) {
    const ep = [...this.endpoints.entries()].find(([, r]) => r.arn === i.EndpointArn);
    if (!ep) throw new ResourceNotFoundFault({ message: 'no endpoint', ...meta });
    this.connections.set(`${i.EndpointArn} ${i.ReplicationInstanceArn}`, { status: 'testing', endpointId: ep[0] });
    return { Connection: { Status: 'testing' } };
  }

  async #describeConnections(i: { Filters?: { Name: string; Values: string[] }[] }) {
    const ep = FakeAws.#filter(i, 'endpoint-arn')?.[0];
    const ri = FakeAws.#filter(i, 'replication-instance-arn')?.[0];
    const c = this.connections.get(`${ep} ${ri}`);
    if (!c) return { Connections: [] };
    if (c.status === 'testing') {
      const fail = this.failConnectionTest?.endpointId === c.endpointId ? this.failConnectionTest.message : undefined;
      // The test really connects, as DMS would, with the endpoint's own settings.
      const err = fail ?? (await this.#reach(this.endpoints.get(c.endpointId)!));
      Object.assign(c, err ? { status: 'failed', message: err } : { status: 'successful' });
    }
    return { Connections: [{ EndpointArn: ep, ReplicationInstanceArn: ri, EndpointIdentifier: c.endpointId, Status: c.status, LastFailureMessage: c.message }] };
  }

  #createTask(i: CreateReplicationTaskMessage) {
    if (this.tasks.has(i.ReplicationTaskIdentifier!)) throw new ResourceAlreadyExistsFault({ message: 'exists', ...meta });
    const t: Task = { id: i.ReplicationTaskIdentifier!, arn: this.#arn('task', i.ReplicationTaskIdentifier!), input: i, status: 'creating', cdc: false, tables: new Map(), tags: i.Tags ?? [] };
    this.tasks.set(t.id, t);
    return { ReplicationTask: this.#taskView(t) };
  }

  #taskView(t: Task) {
    const stats = [...t.tables.values()];
    return {
      ReplicationTaskIdentifier: t.id,
      ReplicationTaskArn: t.arn,
      ReplicationInstanceArn: t.input.ReplicationInstanceArn,
      SourceEndpointArn: t.input.SourceEndpointArn,
      TargetEndpointArn: t.input.TargetEndpointArn,
      TableMappings: t.input.TableMappings,
      Status: t.status,
      StopReason: t.stopReason,
      LastFailureMessage: t.lastFailure,
      ReplicationTaskStartDate: t.startDate,
      MigrationType: t.input.MigrationType,
      RecoveryCheckpoint: t.cdc ? `checkpoint:V1#${this.#seq}#fake` : undefined,
      ReplicationTaskStats: {
        FullLoadProgressPercent: stats.length ? Math.round((100 * stats.filter((s) => s.state === 'Table completed').length) / stats.length) : 0,
        TablesLoaded: stats.filter((s) => s.state === 'Table completed').length,
        TablesLoading: stats.filter((s) => s.state === 'Full load').length,
        TablesQueued: stats.filter((s) => s.state === 'Before load').length,
        TablesErrored: stats.filter((s) => s.state === 'Table error').length,
      },
    };
  }

  #task(arn: string): Task {
    const t = [...this.tasks.values()].find((x) => x.arn === arn);
    if (!t) throw new ResourceNotFoundFault({ message: 'no task', ...meta });
    return t;
  }

  #describeTasks(i: { Filters?: { Name: string; Values: string[] }[] }) {
    const ids = FakeAws.#filter(i, 'replication-task-id');
    const found = [...this.tasks.values()].filter((t) => !ids || ids.includes(t.id));
    const view = found.map((t) => this.#taskView(t));
    for (const t of found) {
      if (t.status === 'creating') t.status = 'ready';
      if (t.status === 'stopping') Object.assign(t, { status: 'stopped', stopReason: 'Stop Reason NORMAL' });
      if (t.status === 'deleting') this.tasks.delete(t.id);
      if (t.status === 'starting') {
        t.status = 'running';
        const work = t.pending;
        t.pending = undefined;
        if (work) t.busy = this.#background(t, work());
      }
    }
    return { ReplicationTasks: this.#filtered(view, 'replication tasks') };
  }

  #startTask(i: { ReplicationTaskArn: string; StartReplicationTaskType: string; CdcStartPosition?: string }) {
    const t = this.#task(i.ReplicationTaskArn);
    if (t.status === 'running' || t.status === 'starting') throw new InvalidResourceStateFault({ message: `task is ${t.status}`, ...meta });
    if (t.status === 'creating') throw new InvalidResourceStateFault({ message: 'task is being created', ...meta });
    t.startDate = new Date();
    t.cdcStart = i.CdcStartPosition;
    Object.assign(t, { status: 'starting', stopReason: undefined, lastFailure: undefined });
    if (t.input.MigrationType === 'cdc' && i.StartReplicationTaskType === 'start-replication') {
      t.pending = () => this.#beginCdc(t);
    } else if (i.StartReplicationTaskType === 'resume-processing') {
      t.pending = async () => {
        t.cdc = t.input.MigrationType !== 'full-load';
        if (!t.cdc) await this.#finishLoad(t);
        else if (!this.keysWhenResumed) this.keysWhenResumed = await this.#keysNow(t);
      };
    } else {
      t.pending = () => this.#load(t);
    }
    return { ReplicationTask: this.#taskView(t) };
  }

  /** Work DMS does after answering: its failure fails the task, as DMS's own would. */
  #background(t: Task, work: Promise<void>): Promise<void> {
    return work.catch((err: Error) => void Object.assign(t, { status: 'failed', lastFailure: err.message }));
  }

  #stopTask(i: { ReplicationTaskArn: string }) {
    const t = this.#task(i.ReplicationTaskArn);
    if (t.status !== 'running' && t.status !== 'starting') throw new InvalidResourceStateFault({ message: `task is ${t.status}`, ...meta });
    t.status = 'stopping';
    t.pending = undefined;
    t.cdc = false;
    return { ReplicationTask: this.#taskView(t) };
  }

  /** DMS reloads tables only in a running task, in the background. */
  #reloadTables(i: { ReplicationTaskArn: string; TablesToReload: { SchemaName: string; TableName: string }[] }) {
    const t = this.#task(i.ReplicationTaskArn);
    if (t.status !== 'running') throw new InvalidResourceStateFault({ message: `ReloadTables needs a running task; this one is ${t.status}`, ...meta });
    const tables = i.TablesToReload.map((x) => t.tables.get(`${x.SchemaName}.${x.TableName}`)!);
    for (const x of tables) x.state = 'Before load';
    t.busy = this.#background(
      t,
      (async () => {
        for (const x of tables) await this.#copyTable(t, x);
        if (t.finishWhenReloaded && ![...t.tables.values()].some((x) => x.state !== 'Table completed')) {
          t.finishWhenReloaded = false;
          await this.#finishLoad(t);
        }
      })(),
    );
    return { ReplicationTaskArn: t.arn };
  }

  #deleteTask(i: { ReplicationTaskArn: string }) {
    const t = this.#task(i.ReplicationTaskArn);
    if (t.status === 'running') throw new InvalidResourceStateFault({ message: 'task is running', ...meta });
    t.status = 'deleting';
    return { ReplicationTask: this.#taskView(t) };
  }

  async #tableStatistics(i: { ReplicationTaskArn: string }) {
    const t = this.#task(i.ReplicationTaskArn);
    // CDC: the source's changes since the last look are applied now.
    if (t.cdc && t.status === 'running') await this.#mirror(t);
    return {
      TableStatistics: [...t.tables.values()].map((s) => ({
        SchemaName: s.schema,
        TableName: s.table,
        TableState: s.state,
        FullLoadRows: s.fullLoadRows,
        Inserts: s.inserts,
        Updates: s.updates,
        Deletes: s.deletes,
      })),
    };
  }

  #latency(i: { MetricName: string; Dimensions?: { Name: string; Value: string }[] }) {
    const taskResource = i.Dimensions?.find((d) => d.Name === 'ReplicationTaskIdentifier')?.Value;
    const instanceId = i.Dimensions?.find((d) => d.Name === 'ReplicationInstanceIdentifier')?.Value;
    const t = [...this.tasks.values()].find((x) => x.arn.endsWith(`:${taskResource}`));
    // CloudWatch has datapoints only under the task's own dimensions, and only while CDC runs.
    if (!t?.cdc || t.status !== 'running' || this.instances.get(instanceId ?? '')?.arn !== t.input.ReplicationInstanceArn) return { Datapoints: [] };
    return { Datapoints: [{ Timestamp: new Date(), Maximum: this.latencySeconds, Unit: 'Seconds' }] };
  }

  #createSubscription(i: { SubscriptionName: string }) {
    if (this.subscriptions.has(i.SubscriptionName)) throw new ResourceAlreadyExistsFault({ message: 'exists', ...meta });
    this.subscriptions.set(i.SubscriptionName, i);
    return { EventSubscription: { CustSubscriptionId: i.SubscriptionName } };
  }

  #describeSubscriptions(i: { SubscriptionName?: string }) {
    const s = i.SubscriptionName ? this.subscriptions.get(i.SubscriptionName) : undefined;
    if (!s) throw new ResourceNotFoundFault({ message: 'no subscription', ...meta });
    return { EventSubscriptionsList: [{ CustSubscriptionId: i.SubscriptionName }] };
  }

  #deleteSubscription(i: { SubscriptionName: string }) {
    if (!this.subscriptions.delete(i.SubscriptionName)) throw new ResourceNotFoundFault({ message: 'no subscription', ...meta });
    return {};
  }

  // ---- moving rows, as DMS would ----

  /** Connects to an endpoint as its test would: undefined when it answers, else why not. */
  async #reach(ep: FakeEndpoint): Promise<string | undefined> {
    try {
      if (ep.input.EndpointType === 'source') await (await this.#source(ep)).close();
      else await (await this.#connect(ep)).end();
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  }

  /** A target connection with the endpoint's own settings (server, credentials, SSL mode, CA). */
  async #connect(ep: FakeEndpoint): Promise<Client> {
    const i = ep.input;
    const c = new Client({ host: i.ServerName, port: i.Port, database: i.DatabaseName, user: i.Username, password: i.Password, ssl: this.#ssl(ep) as never });
    // A database dropped under an open session (a test's cleanup) must not crash the test run.
    c.on('error', () => undefined);
    await c.connect();
    if (i.PostgreSQLSettings?.AfterConnectScript) await c.query(i.PostgreSQLSettings.AfterConnectScript);
    return c;
  }

  #ssl(ep: FakeEndpoint): object | undefined {
    const i = ep.input;
    if (i.SslMode === 'none' || !i.SslMode) return undefined;
    if (i.SslMode === 'require') return { rejectUnauthorized: false };
    const ca = i.CertificateArn ? [...this.certificates.values()].find((c) => c.arn === i.CertificateArn)?.pem : undefined;
    return { rejectUnauthorized: true, ca, ...(i.SslMode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}) };
  }

  /** The source endpoint as DMS reads it: PostgreSQL, or MySQL/MariaDB (its database is the schema). */
  async #source(ep: FakeEndpoint): Promise<SourceReader> {
    const i = ep.input;
    if (i.EngineName === 'postgres') {
      const c = await this.#connect(ep);
      return {
        tables: async () =>
          (
            await c.query<{ schema: string; table: string }>(
              `SELECT table_schema AS schema, table_name AS table FROM information_schema.tables
                WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`,
            )
          ).rows,
        rows: async (schema, table) => (await c.query<{ r: Row }>(`SELECT to_jsonb(x) AS r FROM ${quote(schema)}.${quote(table)} x`)).rows.map((x) => x.r),
        key: (schema, table) => primaryKey(c, `${quote(schema)}.${quote(table)}`),
        snapshot: () => c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY').then(() => undefined),
        close: () => c.end(),
      };
    }
    const my = await createMysql({
      host: i.ServerName,
      port: i.Port,
      user: i.Username,
      password: i.Password,
      ...(this.#ssl(ep) ? { ssl: this.#ssl(ep) as never } : {}),
      dateStrings: true,
      supportBigNumbers: true,
      bigNumberStrings: true,
      decimalNumbers: false,
    } as never);
    my.on('error', () => undefined);
    const bq = (x: string) => '`' + x.replace(/`/g, '``') + '`';
    return {
      // A MySQL endpoint names no database: the task's selection rules pick among all of them.
      tables: async () => {
        const [rows] = await my.query(
          `SELECT TABLE_SCHEMA AS \`schema\`, TABLE_NAME AS \`table\` FROM information_schema.TABLES
            WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1, 2`,
        );
        return rows as { schema: string; table: string }[];
      },
      rows: async (schema, table) => (await my.query(`SELECT * FROM ${bq(schema)}.${bq(table)}`))[0] as Row[],
      key: async (schema, table) => {
        const [rows] = await my.query(
          `SELECT COLUMN_NAME AS c FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION`,
          [schema, table],
        );
        return (rows as { c: string }[]).map((x) => x.c);
      },
      snapshot: () => my.query('START TRANSACTION WITH CONSISTENT SNAPSHOT').then(() => undefined),
      close: () => my.end(),
    };
  }

  #sides(t: Task) {
    const source = [...this.endpoints.values()].find((e) => e.arn === t.input.SourceEndpointArn)!;
    const target = [...this.endpoints.values()].find((e) => e.arn === t.input.TargetEndpointArn)!;
    return { source, target };
  }

  /** The tables the task's selection rules name (`%` wildcards; exclude rules win). */
  async #selected(t: Task): Promise<{ schema: string; table: string }[]> {
    const rules = (JSON.parse(t.input.TableMappings!) as { rules: Record<string, any>[] }).rules.filter((r) => r['rule-type'] === 'selection');
    const like = (pattern: string, v: string) => dmsLike(pattern).test(v);
    const src = await this.#source(this.#sides(t).source);
    try {
      const matches = (x: { schema: string; table: string }, action: string) =>
        rules.some((r) => r['rule-action'] === action && like(r['object-locator']['schema-name'], x.schema) && like(r['object-locator']['table-name'], x.table));
      return (await src.tables()).filter((x) => matches(x, 'include') && !matches(x, 'exclude'));
    } finally {
      await src.close();
    }
  }

  async #load(t: Task): Promise<void> {
    t.tables = new Map((await this.#selected(t)).map((x) => [`${x.schema}.${x.table}`, { ...x, state: 'Before load', fullLoadRows: 0, inserts: 0, updates: 0, deletes: 0, seen: new Map() }]));
    let n = 0;
    for (const s of t.tables.values()) {
      await this.#copyTable(t, s);
      if (++n === 1 && this.failLoadOnce) {
        Object.assign(t, { status: 'failed', lastFailure: this.failLoadOnce });
        this.failLoadOnce = undefined;
        return;
      }
    }
    // Suspended tables keep the task running until they are reloaded.
    if ([...t.tables.values()].some((x) => x.state === 'Table error')) t.finishWhenReloaded = true;
    else await this.#finishLoad(t);
  }

  /**
   * A task of type cdc: the target was loaded some other way, as of the start position. The
   * fake cannot replay a binlog: it takes the target's rows as what it has seen, so the next
   * looks apply whatever the source has that the target lacks (rows equal in value but not in
   * form, such as 1.50 and "1.50", are rewritten once, harmlessly).
   */
  async #beginCdc(t: Task): Promise<void> {
    const slot = this.#sides(t).source.input.PostgreSQLSettings?.SlotName;
    if (slot) {
      // DMS checks the named slot exists and a start position was given.
      const pg = await this.#connect(this.#sides(t).source);
      const found = await pg.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot]).finally(() => pg.end());
      if (found.rowCount === 0 || !t.cdcStart) throw new Error(`Replication slot ${slot} does not exist or no CdcStartPosition was given`);
    }
    const tgt = await this.#connect(this.#sides(t).target);
    const src = await this.#source(this.#sides(t).source);
    try {
      t.tables = new Map();
      for (const x of await this.#selected(t)) {
        const q = `${quote(x.schema)}.${quote(x.table)}`;
        const key = await src.key(x.schema, x.table);
        const rows = (await tgt.query<{ r: Row }>(`SELECT to_jsonb(x) AS r FROM ${q} x`)).rows.map((r) => r.r);
        t.tables.set(`${x.schema}.${x.table}`, { ...x, state: 'Table completed', fullLoadRows: 0, inserts: 0, updates: 0, deletes: 0, seen: new Map(rows.map((r) => [keyOf(key, r), JSON.stringify(r)])) });
      }
      t.cdc = true;
    } finally {
      await Promise.all([tgt.end(), src.close()]);
    }
  }

  async #finishLoad(t: Task): Promise<void> {
    const settings = JSON.parse(t.input.ReplicationTaskSettings ?? '{}') as { FullLoadSettings?: { StopTaskCachedChangesNotApplied?: boolean } };
    if (t.input.MigrationType === 'full-load') Object.assign(t, { status: 'stopped', stopReason: 'Stop Reason FULL_LOAD_ONLY_FINISHED' });
    else if (settings.FullLoadSettings?.StopTaskCachedChangesNotApplied) Object.assign(t, { status: 'stopped', stopReason: 'Stop Reason STOPPED_AFTER_FULL_LOAD' });
    else t.cdc = true;
  }

  /** Copies one table's rows into the target as they are (DO_NOTHING: nothing emptied first). */
  async #copyTable(t: Task, s: TableStat): Promise<void> {
    const { source, target } = this.#sides(t);
    const [src, tgt] = await Promise.all([this.#source(source), this.#connect(target)]);
    s.state = 'Full load';
    if (this.slowLoadMs) await new Promise((r) => setTimeout(r, this.slowLoadMs));
    try {
      const q = `${quote(s.schema)}.${quote(s.table)}`;
      const key = await src.key(s.schema, s.table);
      const rows = await src.rows(s.schema, s.table);
      const failing = this.tableErrorOnce === `${s.schema}.${s.table}`;
      const take = failing ? rows.slice(0, Math.floor(rows.length / 2)) : this.loseRowOf === `${s.schema}.${s.table}` ? rows.slice(1) : rows;
      for (const r of take) await insertRow(tgt, q, r);
      // What CDC starts from: the rows as read here.
      s.seen = new Map(rows.map((r) => [keyOf(key, r), JSON.stringify(r)]));
      s.fullLoadRows = failing ? take.length : rows.length;
      s.state = failing ? 'Table error' : 'Table completed';
      if (failing) this.tableErrorOnce = undefined;
    } finally {
      await Promise.all([src.close(), tgt.end()]);
    }
  }

  /**
   * CDC: what changed on the source since the last look, applied by the source's key (UPDATE
   * for a row that kept its key, as DMS sends it), from one source snapshot in one target
   * transaction, as the target endpoint's AfterConnectScript set the session up.
   */
  async #mirror(t: Task): Promise<void> {
    const { source, target } = this.#sides(t);
    const [src, tgt] = await Promise.all([this.#source(source), this.#connect(target)]);
    try {
      await src.snapshot();
      await tgt.query('BEGIN');
      for (const s of t.tables.values()) {
        const q = `${quote(s.schema)}.${quote(s.table)}`;
        const key = await src.key(s.schema, s.table);
        const now = new Map((await src.rows(s.schema, s.table)).map((r) => [keyOf(key, r), r]));
        const where = key.map((k) => `${quote(k)} = (jsonb_populate_record(NULL::${q}, $1)).${quote(k)}`).join(' AND ');
        for (const [k, row] of now) {
          const before = s.seen.get(k);
          if (before === JSON.stringify(row)) continue;
          if (before === undefined) {
            await insertRow(tgt, q, row);
            s.inserts++;
          } else {
            const cols = Object.keys(row).map(quote).join(', ');
            await tgt.query(`UPDATE ${q} SET (${cols}) = (SELECT ${cols} FROM jsonb_populate_record(NULL::${q}, $1)) WHERE ${where}`, [row]);
            s.updates++;
          }
          s.seen.set(k, JSON.stringify(row));
        }
        for (const [k, before] of s.seen) {
          if (now.has(k)) continue;
          await tgt.query(`DELETE FROM ${q} WHERE ${where}`, [JSON.parse(before)]);
          s.seen.delete(k);
          s.deletes++;
        }
      }
      await tgt.query('COMMIT');
    } finally {
      await Promise.all([src.close(), tgt.end()]);
    }
  }

  async #keysNow(t: Task): Promise<Record<string, boolean>> {
    const tgt = await this.#connect(this.#sides(t).target);
    try {
      const out: Record<string, boolean> = {};
      for (const s of t.tables.values()) out[`${s.schema}.${s.table}`] = (await primaryKey(tgt, `${quote(s.schema)}.${quote(s.table)}`).catch(() => [])).length > 0;
      return out;
    } finally {
      await tgt.end();
    }
  }
}

type Row = Record<string, unknown>;

interface SourceReader {
  tables(): Promise<{ schema: string; table: string }[]>;
  rows(schema: string, table: string): Promise<Row[]>;
  key(schema: string, table: string): Promise<string[]>;
  /** Starts a transaction reading one consistent snapshot. */
  snapshot(): Promise<void>;
  close(): Promise<void>;
}

const keyOf = (key: string[], r: Row) => JSON.stringify(key.map((k) => r[k]));

/** A DMS object-locator name as a regular expression: `%` any run, `_` any one character, `[…]` a set. */
function dmsLike(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '%') out += '.*';
    else if (c === '_') out += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      out += `[${pattern.slice(i + 1, end).replace(/[\\\]^]/g, '\\$&')}]`;
      i = end;
    } else out += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

const quote = (s: string) => `"${s.replace(/"/g, '""')}"`;

async function insertRow(c: Client, q: string, row: Record<string, unknown>): Promise<void> {
  const cols = Object.keys(row).map(quote).join(', ');
  await c.query(`INSERT INTO ${q} (${cols}) SELECT ${cols} FROM jsonb_populate_record(NULL::${q}, $1)`, [row]);
}

async function primaryKey(c: Client, q: string): Promise<string[]> {
  const r = await c.query<{ a: string }>(
    `SELECT a.attname AS a FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
      WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)`,
    [q],
  );
  return r.rows.map((x) => x.a);
}
