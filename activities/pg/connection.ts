import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import { Client, type ClientConfig } from 'pg';
import type { Plan } from '../../plan/plan-schema';
import { describeEndpoint } from '../../plan/secret-ref';
import { resolveSecret, resolveUrl } from '../secrets';
import { toFailure } from './errors';
import { rdsAuthToken, type IamAuth } from '../aws/iam-token';
import { rdsEndpoint } from '../aws/rds';

type Side = 'source' | 'target';
type EndpointPlan = Plan['source'] | Plan['target'];

/** A resolved endpoint: the URL with its secret, kept inside the activity. */
export interface PgEndpoint {
  side: Side;
  url: string;
  /** engine/host:port/database, no credentials: safe for messages, history and search attributes. */
  description: string;
  database: string;
  ssl?: ClientConfig['ssl'];
  secrets: string[];
  /** `auth: iam`: a fresh RDS IAM token is the password of each new connection (connectionUrl). */
  iam?: IamAuth;
}

/** The URL a new connection uses: with `auth: iam`, a token made now as its password. */
export async function connectionUrl(ep: PgEndpoint, database?: string): Promise<string> {
  if (!ep.iam && database === undefined) return ep.url;
  const url = new URL(ep.url);
  if (database !== undefined) url.pathname = '/' + encodeURIComponent(database);
  if (ep.iam) url.password = encodeURIComponent(await rdsAuthToken(ep.iam, ep.side));
  return url.toString();
}

export async function resolveEndpoint(plan: Plan, side: Side): Promise<PgEndpoint> {
  const ep: EndpointPlan = plan[side];
  const resolved = await resolveUrl(ep.url, `${side}.url`, { schemes: ['postgres:', 'postgresql:'], engine: 'PostgreSQL', example: 'postgres://user@host:port/database' });
  const { parsed } = resolved;
  let { url } = resolved;
  // An RDS target (aws.rds): the instance's endpoint, whatever host the URL names (an instance
  // being created has none yet); the URL gives user, password, database and options.
  if (side === 'target' && plan.aws?.rds) {
    const at = await rdsEndpoint(plan);
    parsed.hostname = at.host;
    parsed.port = String(at.port);
    url = parsed.toString();
  }
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, '')) || 'postgres';
  const iam: IamAuth | undefined =
    ep.auth === 'iam'
      ? { host: parsed.hostname, port: Number(parsed.port || 5432), user: decodeURIComponent(parsed.username), region: plan.aws?.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? '' }
      : undefined;
  const queryPassword = parsed.searchParams.get('password') ?? '';
  const secrets = [parsed.password ? decodeURIComponent(parsed.password) : '', parsed.password, queryPassword].filter(Boolean);
  return {
    side,
    url,
    description: `${side} ${describeEndpoint(ep.engine, url)}`,
    database,
    ssl: await sslOptions(ep.tls, side),
    secrets,
    ...(iam ? { iam } : {}),
  };
}

async function sslOptions(tls: EndpointPlan['tls'], side: Side): Promise<ClientConfig['ssl']> {
  if (!tls || tls.mode === 'disable') return undefined;
  const opts: ConnectionOptions = {};
  if (tls.ca) {
    const ca = await resolveSecret(tls.ca, `${side}.tls.ca`);
    // A `file:` reference resolves to the PEM's content; an inline value may be a path.
    opts.ca = ca.includes('-----BEGIN') ? ca : await readFile(ca, 'utf8');
  }
  if (tls.mode === 'require') return { ...opts, rejectUnauthorized: false };
  if (tls.mode === 'verify-ca') return { ...opts, rejectUnauthorized: true, checkServerIdentity: () => undefined };
  return { ...opts, rejectUnauthorized: true };
}

/**
 * Values must stay exact: dates and timestamps as the server's text, never a JS Date
 * (bigint and numeric are strings in `pg` already).
 */
const TEXT_TYPE_OIDS = new Set([1082, 1083, 1114, 1184, 1266, 1186]);
const pgTypes = {
  getTypeParser(oid: number, format?: string) {
    if (TEXT_TYPE_OIDS.has(oid)) return (v: string) => v;
    return require('pg').types.getTypeParser(oid, format);
  },
};

/** A connected client; connection failures become typed, scrubbed failures naming the endpoint. */
export async function connect(ep: PgEndpoint, opts: { database?: string; purpose: string; replication?: boolean }): Promise<Client> {
  const client = new Client({
    connectionString: await connectionUrl(ep, opts.database),
    ssl: ep.ssl,
    application_name: `dbferry ${opts.purpose}`.slice(0, 63),
    types: pgTypes,
    connectionTimeoutMillis: 15_000,
    keepAlive: true,
  });
  // An idle client whose server goes away emits 'error'; without a listener Node would crash the worker.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await closeQuietly(client);
    throw toFailure(err, ep.side, { endpoint: ep.description, secrets: ep.secrets, doing: `connecting (${opts.purpose})` });
  }
  try {
    // Stable text forms so checksums agree across servers whatever their defaults. A lock held
    // by someone else fails the statement (retried, then the operator is asked) instead of
    // waiting silently forever behind a heartbeat that says all is well. Row security off, as
    // pg_dump does: a user whose reads or writes a policy would filter gets an error naming the
    // table, never a silent subset of the rows (a load, a checksum and an apply that all miss
    // the same rows would say "equal").
    await client.query(
      "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 1; SET lock_timeout = '5min'; SET row_security = off",
    );
  } catch (err) {
    await closeQuietly(client);
    throw toFailure(err, ep.side, { endpoint: ep.description, secrets: ep.secrets, doing: `setting up the session (${opts.purpose})` });
  }
  return client;
}

export async function withConnection<T>(ep: PgEndpoint, purpose: string, fn: (c: Client) => Promise<T>, database?: string): Promise<T> {
  const c = await connect(ep, { purpose, database });
  try {
    return await fn(c);
  } catch (err) {
    // Driver errors become typed failures naming the endpoint (typed ones pass through).
    throw toFailure(err, ep.side, { endpoint: ep.description, secrets: ep.secrets, doing: purpose });
  } finally {
    await closeQuietly(c);
  }
}

/**
 * Closes a client without waiting on it forever: a connection left mid-COPY by a failed stream
 * never answers another query, and even a polite Terminate can stall behind it.
 */
export async function closeQuietly(client: Client | undefined, waitMs = 5_000): Promise<void> {
  if (!client) return;
  let timer: NodeJS.Timeout | undefined;
  const ended = client.end().catch(() => undefined);
  const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), waitMs)));
  if ((await Promise.race([ended, timedOut])) === 'timeout') {
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  }
  clearTimeout(timer);
}
