import { readFile } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
import { createConnection, type Connection, type ConnectionOptions, type TypeCastField } from 'mysql2/promise';
import { FailureType, NEEDS_PERSON } from '../../plan/failure-types';
import type { Plan } from '../../plan/plan-schema';
import { describeEndpoint } from '../../plan/secret-ref';
import { resolveSecret, resolveUrl } from '../secrets';
import { scrub } from '../scrub';
import { rdsAuthToken, type IamAuth } from '../aws/iam-token';

/** A resolved MySQL/MariaDB source: the URL with its secret, kept inside the activity. */
export interface MysqlEndpoint {
  url: string;
  /** `source mysql/host:port/db`: no credentials. */
  description: string;
  /** The database the URL names: it becomes the PostgreSQL schema of the same name. */
  database: string;
  ssl?: ConnectionOptions['ssl'];
  secrets: string[];
  /** `auth: iam`: a fresh RDS IAM token is the password of each new connection (mysqlConnectionAuth). */
  iam?: IamAuth;
}

/**
 * What a new connection authenticates with: the URL, or with `auth: iam` a token made now as
 * its password, sent as RDS asks for it (the clear-text plugin, over the TLS the plan requires).
 */
export async function mysqlConnectionAuth(ep: MysqlEndpoint): Promise<{ uri: string; authPlugins?: ConnectionOptions['authPlugins'] }> {
  if (!ep.iam) return { uri: ep.url };
  const token = await rdsAuthToken(ep.iam, 'source');
  const u = new URL(ep.url);
  u.password = encodeURIComponent(token);
  return { uri: u.toString(), authPlugins: { mysql_clear_password: () => () => Buffer.from(`${token}\0`) } };
}

export async function resolveMysqlEndpoint(plan: Plan): Promise<MysqlEndpoint> {
  const ep = plan.source;
  const { url, parsed } = await resolveUrl(ep.url, 'source.url', { schemes: ['mysql:', 'mariadb:'], engine: 'MySQL', example: 'mysql://user@host:port/database' });
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (!database) {
    throw ApplicationFailure.create({
      type: FailureType.SecretUnresolved,
      nonRetryable: true,
      message: `source.url: the URL ${ep.url} resolves to names no database (expected mysql://user@host:port/database)`,
      details: [{ hint: `add the database to the URL in ${ep.url}, then run dbferry retry` }],
    });
  }
  const tls = ep.tls;
  let ssl: ConnectionOptions['ssl'];
  if (tls && tls.mode !== 'disable') {
    const ca = tls.ca ? await resolveSecret(tls.ca, 'source.tls.ca') : undefined;
    const pem = ca === undefined ? undefined : ca.includes('-----BEGIN') ? ca : await readFile(ca, 'utf8');
    ssl = { ...(pem ? { ca: pem } : {}), rejectUnauthorized: tls.mode !== 'require', ...(tls.mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}) };
  }
  return {
    url,
    description: `source ${describeEndpoint('mysql', url)}`,
    database,
    ...(ssl ? { ssl } : {}),
    ...(ep.auth === 'iam'
      ? { iam: { host: parsed.hostname, port: Number(parsed.port || 3306), user: decodeURIComponent(parsed.username), region: plan.aws?.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? '' } }
      : {}),
    secrets: [parsed.password ? decodeURIComponent(parsed.password) : '', parsed.password].filter(Boolean),
  };
}

/**
 * Values stay exact, never a JavaScript number or Date: DECIMAL and BIGINT as strings, dates as
 * the server's text (zero dates included), JSON as text; binary strings and BIT as bytes (the
 * driver's defaults with the options below). FLOAT and DOUBLE are selected as text by the
 * reader. Geometry comes as MySQL's own bytes (the driver would parse it into points).
 */
function typeCast(field: TypeCastField, next: () => unknown): unknown {
  return field.type === 'GEOMETRY' ? field.buffer() : next();
}

/** A connected source session in UTC, with a permissive sql_mode (zero dates read as they are). */
export async function connectMysql(ep: MysqlEndpoint, purpose: string): Promise<Connection> {
  let c: Connection;
  try {
    c = await createConnection({
      ...(await mysqlConnectionAuth(ep)),
      ...(ep.ssl ? { ssl: ep.ssl } : {}),
      charset: 'utf8mb4_general_ci',
      timezone: 'Z',
      dateStrings: true,
      supportBigNumbers: true,
      bigNumberStrings: true,
      jsonStrings: true,
      decimalNumbers: false,
      typeCast,
      connectTimeout: 15_000,
      enableKeepAlive: true,
      multipleStatements: false,
    });
  } catch (err) {
    throw mysqlFailure(err, ep, { doing: `connecting (${purpose})` });
  }
  // An idle connection whose server goes away emits 'error'; without a listener Node would crash the worker.
  (c as unknown as { on(e: string, l: () => void): void }).on('error', () => undefined);
  try {
    // Timestamps in UTC whatever the server's zone; zero dates readable; long reads not cut by the server.
    await c.query("SET time_zone = '+00:00', sql_mode = '', net_write_timeout = 3600, net_read_timeout = 3600, group_concat_max_len = 1048576");
  } catch (err) {
    await closeMysql(c);
    throw mysqlFailure(err, ep, { doing: `setting up the session (${purpose})` });
  }
  return c;
}

export async function closeMysql(c: Connection | undefined): Promise<void> {
  if (!c) return;
  await Promise.race([c.end().catch(() => undefined), new Promise((r) => setTimeout(r, 5_000).unref())]);
  c.destroy();
}

export async function withMysql<T>(ep: MysqlEndpoint, purpose: string, fn: (c: Connection) => Promise<T>): Promise<T> {
  const c = await connectMysql(ep, purpose);
  try {
    return await fn(c);
  } catch (err) {
    throw mysqlFailure(err, ep, { doing: purpose });
  } finally {
    await closeMysql(c);
  }
}

const TRANSIENT = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'PROTOCOL_CONNECTION_LOST', 'ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN', 'ER_QUERY_INTERRUPTED']);

/** MySQL error codes → failure types (mysql2 gives `code` as ER_… names). */
function classify(code: string | undefined, message: string): FailureType {
  if (!code) return /closed|timeout|ECONN|socket/i.test(message) ? FailureType.Transient : FailureType.DatabaseError;
  if (TRANSIENT.has(code)) return FailureType.Transient;
  if (code === 'ER_ACCESS_DENIED_ERROR') return FailureType.AuthenticationFailed;
  if (/^ER_(DBACCESS|TABLEACCESS|COLUMNACCESS|SPECIFIC_ACCESS|PROCACCESS)_DENIED/.test(code)) return FailureType.PermissionDenied;
  if (code === 'ER_BAD_DB_ERROR' || code === 'ER_NO_SUCH_TABLE' || code === 'ER_BAD_FIELD_ERROR') return FailureType.SourceObjectMissing;
  return FailureType.DatabaseError;
}

const HINTS: Partial<Record<FailureType, string>> = {
  [FailureType.AuthenticationFailed]: 'check the user and password the URL reference resolves to, then run dbferry retry',
  [FailureType.PermissionDenied]: 'grant the missing privilege on the source (SELECT on the migrated databases; RELOAD for a consistent read point), then run dbferry retry',
  [FailureType.SourceObjectMissing]: 'the object disappeared from the source; check the table selection, then run dbferry retry',
};

/** A mysql2 error as a typed failure naming the source (never a password). */
export function mysqlFailure(err: unknown, ep: MysqlEndpoint, ctx: { table?: string; doing?: string }): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  const e = err as { code?: string; errno?: number; message?: string };
  const raw = e?.message ?? String(err);
  const type = classify(e?.code, raw);
  const where = [ep.description, ctx.table ? `table ${ctx.table}` : undefined].filter(Boolean).join(', ');
  const message = scrub(`${where}: ${raw}${ctx.doing ? ` while ${ctx.doing}` : ''}`, ep.secrets);
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable: NEEDS_PERSON.includes(type),
    details: [{ endpoint: ep.description, table: ctx.table, code: e?.code, hint: HINTS[type] }],
  });
}
