import { existsSync } from 'node:fs';
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';
import { freePort, isRoot, runAs, spawnAs, waitFor } from './processes';

/** Where mariadbd is: $MARIADBD, else Debian's /usr/sbin/mariadbd. */
function mariadbd(): string {
  for (const c of [process.env.MARIADBD, '/usr/sbin/mariadbd', '/usr/sbin/mysqld']) if (c && existsSync(c)) return c;
  throw new Error('MariaDB server not found: install mariadb-server (scripts/setup.sh) or set MARIADBD');
}

export interface MariaDbServer {
  port: number;
  password: string;
  /** A URL for root over TCP, with the password in it: for tests and the demo, never a plan. */
  url(database?: string): string;
  /** Restarts the server (a clean shutdown, then the same data directory). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface MariaDbOptions {
  baseDir?: string;
  port?: number;
  /** The server's time zone (`--default-time-zone`), e.g. `+05:30`: tests read `timestamp` columns across it. */
  timeZone?: string;
  /** PEM files of the server's TLS certificate and key (readable by the server's OS user): clients may then use TLS. */
  tls?: { cert: string; key: string };
}

/**
 * Starts a throwaway MariaDB server (its own data directory on a free port, a row-based binlog
 * with full row images, as CDC needs) and returns once root can connect over TCP. When we are
 * root it runs as the `mysql` OS user.
 */
export async function startMariaDb(opts: MariaDbOptions = {}): Promise<MariaDbServer> {
  const bin = mariadbd();
  const base = opts.baseDir ?? tmpdir();
  await mkdir(base, { recursive: true });
  const dir = await mkdtemp(join(base, 'dbferry-mariadb-'));
  const dataDir = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  const port = opts.port ?? (await freePort());
  const password = `pw-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`;
  const user = isRoot() ? 'mysql' : undefined;
  if (user) {
    const [uid, gid] = await Promise.all([runAs(undefined, 'id', ['-u', user]), runAs(undefined, 'id', ['-g', user])]);
    await chown(dir, Number(uid.stdout.trim()), Number(gid.stdout.trim()));
  }
  await runAs(user, 'mariadb-install-db', [
    `--datadir=${dataDir}`, '--auth-root-authentication-method=socket', '--skip-test-db', '--skip-name-resolve',
  ]);
  const args = [
    '--no-defaults', `--datadir=${dataDir}`, `--socket=${socket}`, `--port=${port}`, '--bind-address=127.0.0.1',
    `--pid-file=${join(dir, 'mysqld.pid')}`, `--log-error=${join(dir, 'server.log')}`, '--skip-name-resolve',
    '--log-bin=binlog', '--binlog-format=ROW', '--binlog-row-image=FULL', '--binlog-row-metadata=FULL', '--server-id=1',
    '--innodb-buffer-pool-size=128M', '--max-allowed-packet=256M', '--innodb-flush-log-at-trx-commit=2', '--sync-binlog=0', '--max-connections=200',
    '--character-set-server=utf8mb4', '--collation-server=utf8mb4_general_ci',
    ...(opts.timeZone ? [`--default-time-zone=${opts.timeZone}`] : []),
    ...(opts.tls ? [`--ssl-cert=${opts.tls.cert}`, `--ssl-key=${opts.tls.key}`] : []),
  ];
  let proc = spawnAs(user, bin, args, { stdio: 'ignore', detached: false });
  const url = (database = '') => `mysql://root:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  const ready = async () =>
    waitFor(`MariaDB on port ${port}`, 60_000, async () => {
      const c = await createConnection({ socketPath: socket, user: 'root' });
      await c.end();
      return true;
    });
  await ready();
  // root over TCP with a password (the socket trusts the OS user, as Debian's packages do).
  const admin = await createConnection({ socketPath: socket, user: 'root' });
  try {
    await admin.query(`CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ?`, [password]);
    await admin.query(`GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION`);
  } finally {
    await admin.end();
  }
  const shutdown = async () => {
    const exited = new Promise<void>((resolve) => (proc.exitCode !== null ? resolve() : proc.once('exit', () => resolve())));
    proc.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
    if (proc.exitCode === null) proc.kill('SIGKILL');
  };
  return {
    port,
    password,
    url,
    async restart() {
      await shutdown();
      proc = spawnAs(user, bin, args, { stdio: 'ignore', detached: false });
      await ready();
    },
    async stop() {
      await shutdown();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
