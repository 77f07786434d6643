/**
 * `aws-secret:ARN` references, resolved on the worker from AWS Secrets Manager (credentials
 * from the standard AWS chain; the region is the ARN's). A secret whose string is the value
 * itself is used as it is; the JSON RDS keeps for a database (`username`, `password`, `host`,
 * `port`, `dbname`, `engine`) becomes a connection URL when a URL is asked for.
 */
import { ApplicationFailure } from '@temporalio/common';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { FailureType } from '../../plan/failure-types';
import { SECRET_ARN } from '../../plan/secret-ref';
import { awsCall } from './aws-call';

const clients = new Map<string, SecretsManagerClient>();
/** Values are kept a minute: every activity resolves its endpoints, a rotation shows within that. */
const cache = new Map<string, { value: string; until: number }>();
const KEEP_MS = 60_000;

export async function awsSecretValue(arn: string, field: string): Promise<string> {
  const hit = cache.get(arn);
  if (hit && hit.until > Date.now()) return fromSecret(hit.value, field, arn);
  const region = SECRET_ARN.exec(arn)?.[1];
  if (!region) {
    throw ApplicationFailure.create({ type: FailureType.SecretUnresolved, nonRetryable: true, message: `${field}: aws-secret:${arn} is not a Secrets Manager ARN` });
  }
  let client = clients.get(region);
  if (!client) clients.set(region, (client = new SecretsManagerClient({ region })));
  let value: string | undefined;
  try {
    value = (await awsCall(`GetSecretValue (${field})`, () => client.send(new GetSecretValueCommand({ SecretId: arn })))).SecretString;
  } catch (err) {
    if (err instanceof ApplicationFailure && err.type === FailureType.AwsRequestRefused) {
      throw ApplicationFailure.create({
        type: FailureType.SecretUnresolved,
        nonRetryable: true,
        message: `${field}: ${err.message}`,
        details: [{ hint: `let the workers' AWS identity read ${arn} (secretsmanager:GetSecretValue), then run dbferry retry` }],
      });
    }
    throw err;
  }
  if (value === undefined) {
    throw ApplicationFailure.create({ type: FailureType.SecretUnresolved, nonRetryable: true, message: `${field}: secret ${arn} has no string value (a binary secret)` });
  }
  cache.set(arn, { value, until: Date.now() + KEEP_MS });
  return fromSecret(value, field, arn);
}

interface RdsSecret {
  username?: string;
  password?: string;
  host?: string;
  port?: number | string;
  dbname?: string;
  engine?: string;
}

function fromSecret(value: string, field: string, arn: string): string {
  const text = value.trim();
  if (!field.endsWith('.url') || !text.startsWith('{')) return text;
  let j: RdsSecret;
  try {
    j = JSON.parse(text) as RdsSecret;
  } catch {
    return text;
  }
  if (!j.host || !j.username) {
    throw ApplicationFailure.create({
      type: FailureType.SecretUnresolved,
      nonRetryable: true,
      message: `${field}: secret ${arn} is JSON without host and username (expected a connection URL, or RDS's username/password/host/port/dbname)`,
    });
  }
  const scheme = /mysql|maria|aurora$/.test(j.engine ?? '') ? 'mysql' : 'postgres';
  const auth = `${encodeURIComponent(j.username)}${j.password ? `:${encodeURIComponent(j.password)}` : ''}`;
  return `${scheme}://${auth}@${j.host}${j.port ? `:${j.port}` : ''}/${encodeURIComponent(j.dbname ?? '')}`;
}
