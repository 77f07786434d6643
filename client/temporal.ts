import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Client, Connection, WorkflowNotFoundError, type WorkflowExecutionDescription } from '@temporalio/client';
import { loadClientConfigProfile, toClientOptions } from '@temporalio/envconfig';
import { connectionOptions, TEMPORAL_DEFAULTS, type TemporalOptions } from '../plan/temporal-options';
import { CliError, Exit } from './exit-codes';

export type { TemporalOptions };

/** What the command line says; each one set wins over the environment and the profile. */
export interface TemporalFlags {
  address?: string;
  namespace?: string;
  taskQueue?: string;
  profile?: string;
}

/**
 * Where Temporal is and how to reach it, by the Temporal CLI's own conventions (the SDK's
 * envconfig): a profile of temporal.toml (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE), overridden by
 * TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, overridden by flags.
 * The CLI and the worker read it alike, so a profile that works for `temporal` works here.
 */
export function temporalOptions(flags: TemporalFlags = {}, env: NodeJS.ProcessEnv = process.env): TemporalOptions {
  // An empty variable is an unset one (as the shell's VAR= means), not an empty address or queue.
  const vars = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''));
  if (vars.TEMPORAL_CONFIG_FILE && !existsSync(vars.TEMPORAL_CONFIG_FILE)) {
    throw new CliError(Exit.BadInput, `TEMPORAL_CONFIG_FILE ${vars.TEMPORAL_CONFIG_FILE}: no such file`);
  }
  const profileName = flags.profile ?? vars.TEMPORAL_PROFILE;
  let connect: ReturnType<typeof toClientOptions>;
  try {
    connect = toClientOptions(loadClientConfigProfile({ profile: flags.profile, overrideEnvVars: vars }));
  } catch (err) {
    const file = vars.TEMPORAL_CONFIG_FILE ? ` (${vars.TEMPORAL_CONFIG_FILE})` : '';
    throw new CliError(Exit.BadInput, `Temporal client configuration${file}: ${firstLine(err)}`);
  }
  const c = connect.connectionOptions;
  const tls = c.tls ?? undefined;
  return {
    address: flags.address ?? c.address ?? TEMPORAL_DEFAULTS.address,
    namespace: flags.namespace ?? connect.namespace ?? TEMPORAL_DEFAULTS.namespace,
    taskQueue: flags.taskQueue ?? vars.DBFERRY_TASK_QUEUE ?? TEMPORAL_DEFAULTS.taskQueue,
    ...(tls !== undefined ? { tls } : {}),
    ...(c.apiKey ? { apiKey: c.apiKey as string } : {}),
    ...(c.metadata && Object.keys(c.metadata).length > 0 ? { metadata: c.metadata as Record<string, string> } : {}),
    ...(profileName ? { origin: `profile ${profileName}` } : {}),
  };
}

/** A client connected to Temporal, or exit 6 naming the address and what failed (TLS, credentials, reachability). */
export async function connectClient(o: TemporalOptions): Promise<{ client: Client; connection: Connection }> {
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect({ ...connectionOptions(o), connectTimeout: 5_000 });
    await connection.workflowService.getSystemInfo({});
  } catch (err) {
    await connection?.close().catch(() => undefined);
    // gRPC reports a refused certificate as a timeout: a TLS handshake of our own says why.
    const handshake = o.tls ? await tlsHandshakeProblem(o) : undefined;
    throw new CliError(Exit.TemporalUnreachable, temporalConnectProblem(handshake ? new Error(`TLS handshake: ${handshake}`) : err, o));
  }
  return { client: new Client({ connection, namespace: o.namespace }), connection };
}

/** One line an operator can act on: what failed when connecting to Temporal, and which setting to look at. */
export function temporalConnectProblem(err: unknown, o: Pick<TemporalOptions, 'address' | 'tls' | 'apiKey' | 'origin'>): string {
  const text = errorText(err);
  const where = `Temporal at ${o.address}${o.origin ? ` (${o.origin})` : ''}`;
  const detail = relevantLine(text);
  if (/\b(UNAUTHENTICATED|PERMISSION_DENIED)\b|unauthori[sz]ed|invalid api key|forbidden/i.test(text)) {
    return `${where} refused the credentials: ${detail} (${o.apiKey ? 'check TEMPORAL_API_KEY' : 'no API key is set: TEMPORAL_API_KEY'}, or the client certificate)`;
  }
  if (/certificate|self[- ]signed|unable to verify|UnknownIssuer|\bCERT_|ERR_SSL|wrong version number|TLS handshake/i.test(text)) {
    const hint = o.tls
      ? "the server's certificate must be signed by the CA in TEMPORAL_TLS_SERVER_CA_CERT_PATH (or the profile's tls.server_ca_cert_path) and name the address, or TEMPORAL_TLS_SERVER_NAME; a server that asks for a client certificate needs TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH"
      : 'the connection is plaintext: a server that wants TLS needs TEMPORAL_TLS=true or a server CA (TEMPORAL_TLS_SERVER_CA_CERT_PATH)';
    return `TLS with ${where} failed: ${detail} (${hint})`;
  }
  const tlsHint = o.tls ? '' : '; plaintext: a server that wants TLS needs TEMPORAL_TLS=true or a server CA';
  return `cannot reach ${where}: ${detail} (set TEMPORAL_ADDRESS, --address or a temporal.toml profile${tlsHint})`;
}

/** The reason a TLS handshake with the frontend fails, with the same CA, client certificate and server name; undefined when it succeeds. */
async function tlsHandshakeProblem(o: TemporalOptions): Promise<string | undefined> {
  const { host, port } = hostPort(o.address);
  const t = typeof o.tls === 'object' ? o.tls : {};
  const servername = t.serverNameOverride ?? host;
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host,
      port,
      // Node refuses an IP address as SNI (RFC 6066); the certificate is still checked against it.
      ...(isIP(servername) ? {} : { servername }),
      ALPNProtocols: ['h2'],
      ...(t.serverRootCACertificate ? { ca: Buffer.from(t.serverRootCACertificate) } : {}),
      ...(t.clientCertPair ? { cert: Buffer.from(t.clientCertPair.crt), key: Buffer.from(t.clientCertPair.key) } : {}),
      timeout: 5_000,
    });
    const done = (r: string | undefined) => {
      socket.destroy();
      resolve(r);
    };
    // Only a failure after the TCP connection is a TLS problem: a refused or unreachable address is not.
    let connected = false;
    socket.once('connect', () => (connected = true));
    socket.once('secureConnect', () => done(undefined));
    socket.once('error', (e) => done(connected ? e.message : undefined));
    socket.once('timeout', () => done(undefined));
  });
}

function hostPort(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  return m ? { host: m[1]!, port: Number(m[2]) } : { host: address, port: 7233 };
}

/** Every message of the error and its causes: the SDK wraps the transport's reason. */
function errorText(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    parts.push(e instanceof Error ? e.message : String(e));
    e = e instanceof Error ? (e as Error & { cause?: unknown }).cause : undefined;
  }
  return parts.join('\n');
}

/** The line that names the reason (gRPC puts "Last error: …" after a generic first line). */
function relevantLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const reason = lines.find((l) => /certificate|self[- ]signed|UnknownIssuer|UNAUTHENTICATED|PERMISSION_DENIED|refused|ECONNREFUSED|handshake|Last error|API key/i.test(l));
  return (reason ?? lines[0] ?? 'unknown error').slice(0, 400);
}

export async function withClient<T>(o: TemporalOptions, fn: (client: Client) => Promise<T>): Promise<T> {
  const { client, connection } = await connectClient(o);
  try {
    return await fn(client);
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** describe(), or undefined when no workflow has that id. */
export async function describeOrUndefined(client: Client, workflowId: string): Promise<WorkflowExecutionDescription | undefined> {
  try {
    return await client.workflow.getHandle(workflowId).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

export function firstLine(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return m.split('\n')[0]!;
}
