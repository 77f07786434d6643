/**
 * One way to call AWS: the clients of a plan's region (credentials from the standard AWS chain:
 * environment, shared config, web identity, instance or task role), and every request through
 * `awsCall`, which rides out throttling and AWS's own transient errors with backoff and turns
 * the rest into failures that name the request and carry AWS's message.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { DatabaseMigrationServiceClient } from '@aws-sdk/client-database-migration-service';
import { RDSClient } from '@aws-sdk/client-rds';
import { SNSClient } from '@aws-sdk/client-sns';
import { FailureType } from '../../plan/failure-types';
import type { Plan } from '../../plan/plan-schema';
import { heartbeatNow } from '../heartbeat';
import { scrub } from '../scrub';

export interface AwsClients {
  dms: DatabaseMigrationServiceClient;
  rds: RDSClient;
  sns: SNSClient;
  cloudwatch: CloudWatchClient;
}

const clients = new Map<string, AwsClients>();

/** The clients of a region, made once per worker process (they keep their connections). */
export function awsClients(plan: Pick<Plan, 'aws'>): AwsClients {
  const region = plan.aws?.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (!region) {
    throw ApplicationFailure.create({
      type: FailureType.Unsupported,
      nonRetryable: true,
      message: 'no AWS region: set aws.region in the plan (or AWS_REGION on the workers)',
    });
  }
  let c = clients.get(region);
  if (!c) {
    c = { dms: new DatabaseMigrationServiceClient({ region }), rds: new RDSClient({ region }), sns: new SNSClient({ region }), cloudwatch: new CloudWatchClient({ region }) };
    clients.set(region, c);
  }
  return c;
}

/** Error names AWS uses for "slow down" and "try again". */
const TRANSIENT = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalFailure',
  'InternalServerError',
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
]);
const NETWORK = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'EPIPE']);

interface AwsError {
  name?: string;
  message?: string;
  code?: string;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number };
}

export function isTransientAwsError(err: unknown): boolean {
  const e = err as AwsError;
  return TRANSIENT.has(e?.name ?? '') || !!e?.$retryable || (e?.$metadata?.httpStatusCode ?? 0) >= 500 || NETWORK.has(e?.code ?? '');
}

/** True when AWS answered that the named resource does not exist. */
function isNotFound(err: unknown): boolean {
  const name = (err as AwsError)?.name ?? '';
  return /NotFound/.test(name);
}

/** AWS's error code in a failure awsCall raised (its details carry it), or '' for any other error. */
export function awsFailureCode(err: unknown): string {
  return (err instanceof ApplicationFailure ? (err.details?.[0] as { code?: string } | undefined)?.code : undefined) ?? '';
}

/** True when a failure awsCall raised says the resource does not exist. */
export function failedAsNotFound(err: unknown): boolean {
  return isNotFound({ name: awsFailureCode(err) });
}

/** Attempts of one request before its failure goes to Temporal's retry (and then a person). */
const ATTEMPTS = 6;
/** The first backoff (a test shortens it with DBFERRY_AWS_BACKOFF_MS); it doubles with each attempt. */
const backoffMs = () => Number(process.env.DBFERRY_AWS_BACKOFF_MS ?? 1000);

/**
 * Sends one AWS request. Throttling and transient errors are retried here with exponential
 * backoff and jitter (heartbeating meanwhile), then raised as Transient; anything else is
 * raised at once as AwsRequestRefused with AWS's words. `secrets` are scrubbed from messages.
 */
export async function awsCall<T>(what: string, send: () => Promise<T>, secrets: string[] = []): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      const e = err as AwsError;
      const text = scrub(`${what}: AWS answered ${e?.name ?? 'an error'}: ${e?.message ?? String(err)}`, secrets);
      if (isTransientAwsError(err)) {
        if (attempt < ATTEMPTS) {
          heartbeatNow({ step: `${what}: retrying after ${e?.name ?? 'a transient error'} (attempt ${attempt})` });
          await sleep(backoffMs() * 2 ** (attempt - 1) * (0.5 + Math.random() / 2));
          continue;
        }
        throw ApplicationFailure.create({ type: FailureType.Transient, message: `${text} (after ${attempt} attempts)` });
      }
      throw ApplicationFailure.create({
        type: FailureType.AwsRequestRefused,
        nonRetryable: true,
        message: text,
        details: [{ code: e?.name, hint: 'fix what AWS names (permissions, quotas, parameters), then run dbferry retry' }],
      });
    }
  }
}


/** The poll interval of DMS and RDS states (a test shortens it with DBFERRY_AWS_POLL_MS). */
export function pollMs(): number {
  return Number(process.env.DBFERRY_AWS_POLL_MS ?? 15_000);
}
