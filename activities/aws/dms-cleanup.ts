/**
 * What a migration leaves in AWS, and taking it away. An abort stops the task (nothing runs on,
 * nothing is deleted: the operator may still want DMS's logs); `dbferry cleanup` or
 * `aws.cleanup: true` after cutover deletes the event subscription, the task, the endpoints and
 * certificates, and the replication instance when dbferry created it (its tag says so).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DeleteCertificateCommand,
  DeleteEndpointCommand,
  DeleteEventSubscriptionCommand,
  DeleteReplicationInstanceCommand,
  DeleteReplicationTaskCommand,
  DescribeCertificatesCommand,
  DescribeEventSubscriptionsCommand,
  ListTagsForResourceCommand,
} from '@aws-sdk/client-database-migration-service';
import { ApplicationFailure } from '@temporalio/common';
import { CREATED_BY_TAG, dmsNames } from '../../plan/dms-task';
import type { CleanupResult } from '../../plan/migration-types';
import type { Plan } from '../../plan/plan-schema';
import { awsCall, awsClients, failedAsNotFound, pollMs } from './aws-call';
import { describeEndpoint, describeInstance, describeTask } from './dms-resources';
import { dropDmsSlot } from './dms-pg-slot';
import { stopTask } from './dms-runner';
import { withHeartbeat } from '../heartbeat';

/** Runs an AWS request whose "not found" means the work is already done. */
async function gone(what: string, send: () => Promise<unknown>): Promise<boolean> {
  try {
    await awsCall(what, send);
    return true;
  } catch (err) {
    if (failedAsNotFound(err)) return false;
    throw err;
  }
}

export async function cleanupManaged(plan: Plan, removeAll: boolean): Promise<CleanupResult> {
  return withHeartbeat(() => ({ step: removeAll ? 'deleting what the migration made in AWS' : 'stopping the DMS task' }), () => cleanup(plan, removeAll));
}

/** Polls until `gone` says so; false when it did not happen in time. */
async function until(gone: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 240; i++) {
    if (await gone()) return true;
    await sleep(pollMs());
  }
  return false;
}

async function cleanup(plan: Plan, removeAll: boolean): Promise<CleanupResult> {
  const names = dmsNames(plan);
  const out: CleanupResult = { dropped: [], kept: [] };
  const stopped = await stopTask(plan);
  // The slot a cdc task read keeps WAL on the source: it goes once the task has stopped.
  const slot = await dropDmsSlot(plan);
  if (slot) out.dropped.push(slot);
  if (!removeAll) {
    if (stopped) out.dropped.push(stopped);
    if (await describeTask(plan)) out.kept.push(`DMS task ${names.task}, its endpoints and event subscription (dbferry cleanup ${plan.name} deletes them)`);
    return out;
  }
  const { dms } = awsClients(plan);
  const subs = await gone('DescribeEventSubscriptions', () => dms.send(new DescribeEventSubscriptionsCommand({ SubscriptionName: names.subscription })));
  if (subs && (await gone('DeleteEventSubscription', () => dms.send(new DeleteEventSubscriptionCommand({ SubscriptionName: names.subscription }))))) {
    out.dropped.push(`DMS event subscription ${names.subscription}`);
  }
  const task = await describeTask(plan);
  if (task?.ReplicationTaskArn) {
    await gone('DeleteReplicationTask', () => dms.send(new DeleteReplicationTaskCommand({ ReplicationTaskArn: task.ReplicationTaskArn! })));
    // Endpoints cannot go while a task uses them.
    if (await until(async () => !(await describeTask(plan)))) out.dropped.push(`DMS replication task ${names.task}`);
    else out.kept.push(`DMS replication task ${names.task} (still being deleted: run dbferry cleanup ${plan.name} again)`);
  }
  for (const side of ['source', 'target'] as const) {
    const ep = await describeEndpoint(plan, side);
    if (ep?.EndpointArn && (await gone('DeleteEndpoint', () => dms.send(new DeleteEndpointCommand({ EndpointArn: ep.EndpointArn! }))))) {
      // Deleting is asynchronous: a certificate cannot go while an endpoint still uses it.
      if (await until(async () => !(await describeEndpoint(plan, side)))) out.dropped.push(`DMS ${side} endpoint ${ep.EndpointIdentifier}`);
      else out.kept.push(`DMS ${side} endpoint ${ep.EndpointIdentifier} (still being deleted)`);
    }
  }
  for (const id of [names.sourceCertificate, names.targetCertificate]) {
    let arn: string | undefined;
    try {
      arn = (await awsCall('DescribeCertificates', () => dms.send(new DescribeCertificatesCommand({ Filters: [{ Name: 'certificate-id', Values: [id] }] })))).Certificates?.[0]?.CertificateArn;
    } catch (err) {
      if (!(failedAsNotFound(err))) throw err;
    }
    if (arn && (await gone('DeleteCertificate', () => dms.send(new DeleteCertificateCommand({ CertificateArn: arn }))))) out.dropped.push(`DMS certificate ${id}`);
  }
  const instance = await describeInstance(plan);
  if (instance?.ReplicationInstanceArn) {
    const tags = await awsCall('ListTagsForResource', () => dms.send(new ListTagsForResourceCommand({ ResourceArn: instance.ReplicationInstanceArn! })));
    const ours = (tags.TagList ?? []).some((t) => t.Key === CREATED_BY_TAG && t.Value === plan.name);
    const id = instance.ReplicationInstanceIdentifier ?? plan.aws!.replicationInstance!.id;
    if (!ours) {
      out.kept.push(`DMS replication instance ${id} (adopted, not created by this migration)`);
    } else if (await gone('DeleteReplicationInstance', () => dms.send(new DeleteReplicationInstanceCommand({ ReplicationInstanceArn: instance.ReplicationInstanceArn! })))) {
      out.dropped.push(`DMS replication instance ${id}`);
    }
  }
  return out;
}
