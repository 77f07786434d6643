import { readFile } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../plan/failure-types';
import { parseSecretRef } from '../plan/secret-ref';
import { awsSecretValue } from './aws/secrets-manager';

/**
 * Resolves a plan's secret reference on the worker. The value never leaves the activity:
 * callers pass it straight to a driver and must not return or log it.
 */
export async function resolveSecret(ref: string, field: string): Promise<string> {
  const parsed = parseSecretRef(ref);
  switch (parsed.kind) {
    case 'inline':
      return parsed.value;
    case 'env': {
      const v = process.env[parsed.name];
      if (v === undefined || v === '') {
        throw unresolved(field, `environment variable ${parsed.name} is not set on worker ${workerHost()}`);
      }
      return v;
    }
    case 'file':
      try {
        return (await readFile(parsed.path, 'utf8')).trim();
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
        throw unresolved(field, `file ${parsed.path} cannot be read on worker ${workerHost()} (${code})`);
      }
    case 'aws-secret':
      return awsSecretValue(parsed.arn, field);
  }
}

/**
 * A connection URL from its reference, parsed. Anything else (a token file, /etc/shadow, a .env
 * line) would otherwise reach the server as a database name, and the server's "database … does
 * not exist" would carry it into history: the value is never echoed, only the reference.
 */
export async function resolveUrl(ref: string, field: string, kind: { schemes: string[]; engine: string; example: string }): Promise<{ url: string; parsed: URL }> {
  const url = await resolveSecret(ref, field);
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || !kind.schemes.includes(parsed.protocol)) {
    throw ApplicationFailure.create({
      type: FailureType.SecretUnresolved,
      nonRetryable: true,
      message: `${field}: the value ${ref} resolves to is not a ${kind.engine} connection URL (expected ${kind.example}${parsed ? '; it has another scheme' : ''})`,
      details: [{ hint: `fix the value of ${ref} on the workers, then run dbferry retry` }],
    });
  }
  return { url, parsed };
}

function unresolved(field: string, why: string) {
  return ApplicationFailure.create({
    type: FailureType.SecretUnresolved,
    nonRetryable: true,
    message: `${field}: ${why}`,
    details: [{ hint: `provide ${field} to every worker, then run dbferry retry` }],
  });
}

function workerHost(): string {
  return process.env.HOSTNAME || require('node:os').hostname();
}
