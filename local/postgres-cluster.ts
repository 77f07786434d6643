import { existsSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { freePort, isRoot, runAs, waitFor } from './processes';

/** Where the PostgreSQL server binaries are: $PG_BIN, else the newest /usr/lib/postgresql/N/bin. */
export function postgresBinDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  for (const v of ['17', '16', '15', '14']) {
    const dir = `/usr/lib/postgresql/${v}/bin`;
    if (existsSync(join(dir, 'initdb'))) return dir;
  }
  throw new Error('PostgreSQL server binaries not found: install postgresql (scripts/setup.sh) or set PG_BIN');
}

export interface PostgresCluster {
  port: number;
  dataDir: string;
  /** Superuser password: TCP connections need it (scram-sha-256); the socket is trusted. */
  password: string;
  /** With `tls`: the PEM file that verifies the server's certificate. */
  caFile?: string;
  /** A URL for the superuser over TCP, with the password in it: for tests and the demo, never a plan. */
  url(database?: string): string;
  /** Restarts the server (fast shutdown: sessions end, as in a real restart). */
  restart(): Promise<void>;
  /**
   * Kills the server as a crash would (immediate shutdown: commits not yet written out of its WAL
   * buffers are lost, as after a power cut with synchronous_commit off) and starts it again.
   */
  crash(): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** Parent folder; a fresh sub-folder is made in it. Default: the system temp folder. */
  baseDir?: string;
  port?: number;
  password?: string;
  /** Extra postgresql.conf lines. */
  settings?: Record<string, string | number>;
  /** Serve TLS too (plain connections still work) with a self-signed certificate: `caFile` verifies it. */
  tls?: boolean;
}

/**
 * Starts a throwaway PostgreSQL cluster (initdb on a free port, logical WAL on) and returns once
 * it accepts connections. When we are root it runs as the `postgres` OS user.
 */
export async function startPostgresCluster(opts: ClusterOptions = {}): Promise<PostgresCluster> {
  const bin = postgresBinDir();
  const base = opts.baseDir ?? tmpdir();
  await mkdir(base, { recursive: true });
  const dir = await mkdtemp(join(base, 'dbferry-pg-'));
  const dataDir = join(dir, 'data');
  const port = opts.port ?? (await freePort());
  const password = opts.password ?? `pw-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`;
  const user = isRoot() ? 'postgres' : undefined;
  if (user) await chown(dir, ...(await uidGid(user)));
  const pwfile = join(dir, 'pwfile');
  await writeFile(pwfile, password + '\n', { mode: 0o600 });
  if (user) await chown(pwfile, ...(await uidGid(user)));

  await runAs(user, join(bin, 'initdb'), [
    '-D', dataDir, '-U', 'postgres', '--pwfile', pwfile, '--auth-local=trust', '--auth-host=scram-sha-256',
    '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync',
  ]);
  await rm(pwfile, { force: true });
  const settings: Record<string, string | number> = {
    port,
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: `'${dir}'`,
    wal_level: 'logical',
    max_replication_slots: 20,
    max_wal_senders: 20,
    max_connections: 200,
    shared_buffers: "'128MB'",
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    ...opts.settings,
  };
  let caFile: string | undefined;
  if (opts.tls) {
    // Self-signed: the certificate is its own CA (verify-ca passes, verify-full for 127.0.0.1 too).
    await runAs(user, 'openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', join(dataDir, 'server.key'), '-out', join(dataDir, 'server.crt'),
    ]);
    await runAs(user, 'chmod', ['600', join(dataDir, 'server.key')]);
    settings.ssl = 'on';
    caFile = join(dir, 'ca.pem');
    await writeFile(caFile, await readFile(join(dataDir, 'server.crt')));
  }
  await appendFile(
    join(dataDir, 'postgresql.conf'),
    '\n# dbferry throwaway cluster\n' + Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n',
  );
  await runAs(user, join(bin, 'pg_ctl'), ['-D', dataDir, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start']);

  const url = (database = 'postgres') =>
    `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  await waitFor(`PostgreSQL on port ${port}`, 30_000, async () => {
    const c = new Client({ connectionString: url() });
    await c.connect();
    await c.end();
    return true;
  });
  return {
    port,
    dataDir,
    password,
    ...(caFile ? { caFile } : {}),
    url,
    async restart() {
      await runAs(user, join(bin, 'pg_ctl'), ['-D', dataDir, '-l', join(dir, 'server.log'), '-m', 'fast', '-w', '-t', '60', 'restart']);
    },
    async crash() {
      await runAs(user, join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
      await runAs(user, join(bin, 'pg_ctl'), ['-D', dataDir, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start']);
    },
    async stop() {
      await runAs(user, join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function uidGid(user: string): Promise<[number, number]> {
  const { stdout: uid } = await runAs(undefined, 'id', ['-u', user]);
  const { stdout: gid } = await runAs(undefined, 'id', ['-g', user]);
  return [Number(uid.trim()), Number(gid.trim())];
}
