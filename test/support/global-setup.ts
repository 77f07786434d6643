import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPostgresCluster } from '../../local/postgres-cluster';
import { startDevServer } from '../../local/temporal-dev-server';

/**
 * Starts the real servers once for the whole run: a source and a target PostgreSQL cluster
 * and a Temporal dev server (with dbferry's search attributes and its Web UI). Tests create
 * their own databases on them (test/support/databases.ts), so nothing depends on an earlier run.
 * Connection details reach the test workers through environment variables.
 */
export default async function globalSetup(): Promise<void> {
  const base = join(__dirname, '..', '..', '.tmp', 'test-servers');
  mkdirSync(base, { recursive: true });
  const [source, target, temporal] = await Promise.all([
    // TLS on (plain connections still work): the aws runner's SSL endpoints are tested with it.
    startPostgresCluster({ baseDir: base, tls: true }),
    startPostgresCluster({ baseDir: base, tls: true }),
    // With its Web UI (cheap to start): test/ui drives it in a browser.
    startDevServer({ headless: false }),
  ]);
  process.env.DBFERRY_TEST_SOURCE_URL = source.url();
  process.env.DBFERRY_TEST_SOURCE_PASSWORD = source.password;
  process.env.DBFERRY_TEST_TARGET_URL = target.url();
  process.env.DBFERRY_TEST_TARGET_PASSWORD = target.password;
  process.env.DBFERRY_TEST_SOURCE_CA = source.caFile!;
  process.env.DBFERRY_TEST_TARGET_CA = target.caFile!;
  process.env.DBFERRY_TEST_TEMPORAL_ADDRESS = temporal.address;
  process.env.DBFERRY_TEST_TEMPORAL_UI = temporal.uiUrl;
  const g = globalThis as unknown as { __dbferryServers: Array<{ stop(): Promise<void> }> };
  g.__dbferryServers = [temporal, source, target];
  writeFileSync(join(base, 'servers.json'), JSON.stringify({ source: source.port, target: target.port, temporal: temporal.address }));
}
