/**
 * The plan's RDS target instance (`aws.rds`, any runner): adopted by its identifier, or created
 * when `aws.rds.create` is given, and waited for with the SDK's waiter. Its endpoint is where
 * the workers connect: the target URL gives the user, password, database and options.
 */
import { ApplicationFailure } from '@temporalio/common';
import { CreateDBInstanceCommand, DescribeDBInstancesCommand, waitUntilDBInstanceAvailable, type DBInstance } from '@aws-sdk/client-rds';
import { CREATED_BY_TAG } from '../../plan/dms-task';
import { FailureType } from '../../plan/failure-types';
import type { Plan } from '../../plan/plan-schema';
import { awsCall, awsClients, failedAsNotFound, isTransientAwsError, pollMs } from './aws-call';

/** The instance, or undefined when RDS has none by that identifier. */
export async function describeRdsInstance(plan: Plan): Promise<DBInstance | undefined> {
  const id = plan.aws!.rds!.instanceId;
  try {
    const r = await awsCall('DescribeDBInstances', () => awsClients(plan).rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id })));
    return r.DBInstances?.[0];
  } catch (err) {
    if (failedAsNotFound(err)) return undefined;
    throw err;
  }
}

/** Where the instance answers; a failure naming the instance when it is not there (yet). */
export async function rdsEndpoint(plan: Plan): Promise<{ host: string; port: number }> {
  const i = await describeRdsInstance(plan);
  const id = plan.aws!.rds!.instanceId;
  if (!i?.Endpoint?.Address) {
    throw ApplicationFailure.create({
      type: FailureType.TargetDatabaseMissing,
      nonRetryable: true,
      message: i ? `RDS instance ${id} has no endpoint yet (status ${i.DBInstanceStatus})` : `RDS instance ${id} does not exist`,
      details: [{ endpoint: 'target', hint: plan.aws?.rds?.create ? 'the create-database step creates it: run dbferry retry' : `create it, or give aws.rds.create, then run dbferry retry` }],
    });
  }
  return { host: i.Endpoint.Address, port: i.Endpoint.Port ?? 5432 };
}

/**
 * Adopts or creates the instance, then waits until RDS says it is available (an hour at most).
 * The master user and password are the target URL's: the URL stays the one place they live.
 */
export async function ensureRdsInstance(plan: Plan, master: { user: string; password: string }): Promise<{ instanceId: string; created: boolean }> {
  const spec = plan.aws!.rds!;
  const { rds } = awsClients(plan);
  let created = false;
  const found = await describeRdsInstance(plan);
  if (found && found.Engine !== 'postgres') {
    throw ApplicationFailure.create({
      type: FailureType.Unsupported,
      nonRetryable: true,
      message: `RDS instance ${spec.instanceId} runs ${found.Engine}, not postgres`,
      details: [{ endpoint: 'target', hint: 'name a PostgreSQL instance in aws.rds.instanceId' }],
    });
  }
  if (!found) {
    const c = spec.create;
    if (!c) {
      throw ApplicationFailure.create({
        type: FailureType.TargetDatabaseMissing,
        nonRetryable: true,
        message: `RDS instance ${spec.instanceId} does not exist and aws.rds.create is not given`,
        details: [{ endpoint: 'target', hint: 'create the instance, or give aws.rds.create (class, storageGb, …), then run dbferry retry' }],
      });
    }
    try {
      await awsCall(
        'CreateDBInstance',
        () =>
          rds.send(
            new CreateDBInstanceCommand({
              DBInstanceIdentifier: spec.instanceId,
              Engine: 'postgres',
              ...(c.engineVersion ? { EngineVersion: c.engineVersion } : {}),
              DBInstanceClass: c.class,
              AllocatedStorage: c.storageGb,
              MasterUsername: master.user,
              MasterUserPassword: master.password,
              ...(c.subnetGroup ? { DBSubnetGroupName: c.subnetGroup } : {}),
              ...(c.securityGroups ? { VpcSecurityGroupIds: c.securityGroups } : {}),
              ...(c.parameterGroup ? { DBParameterGroupName: c.parameterGroup } : {}),
              StorageEncrypted: true,
              PubliclyAccessible: false,
              Tags: [{ Key: CREATED_BY_TAG, Value: plan.name }],
            }),
          ),
        [master.password],
      );
      created = true;
    } catch (err) {
      // An earlier attempt created it (its answer was lost): adopted below.
      if (!(err instanceof ApplicationFailure && /AlreadyExists/.test((err.details?.[0] as { code?: string } | undefined)?.code ?? ''))) throw err;
    }
  }
  const delay = Math.max(1, Math.round(pollMs() / 1000));
  // The waiter returns on success only: a timeout or a transient error is tried again (the
  // instance may still come up), a terminal state (failed, incompatible-parameters…) waits for a person.
  await waitUntilDBInstanceAvailable({ client: rds, maxWaitTime: 3600, minDelay: delay, maxDelay: Math.max(delay, 60) }, { DBInstanceIdentifier: spec.instanceId }).catch((err: Error) => {
    const again = err.name === 'TimeoutError' || isTransientAwsError(err);
    throw ApplicationFailure.create({
      type: again ? FailureType.Transient : FailureType.AwsRequestRefused,
      nonRetryable: !again,
      message: `RDS instance ${spec.instanceId} did not become available: ${err.message}`,
      details: [{ endpoint: 'target', hint: `see the instance in the RDS console (events), repair or replace it, then dbferry retry` }],
    });
  });
  return { instanceId: spec.instanceId, created };
}
