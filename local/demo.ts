import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { NativeConnection } from '@temporalio/worker';
import { migrationWorkflowId } from '../workflows/search-attributes';
import { createWorker } from '../worker/worker';
import { Exit } from '../client/exit-codes';
import { startMariaDb } from './mariadb-server';
import { createMysqlSampleDatabase } from './mysql-sample-data';
import { startPostgresCluster } from './postgres-cluster';
import { startDevServer } from './temporal-dev-server';
import { startMigration, WAIT_EXIT, waitForOutcome } from '../client/migrations';
import { loadPlanFile } from '../client/plan-file';
import { formatReport, formatStatus } from '../client/render';
import { withClient } from '../client/temporal';
import { createSampleDatabase } from './sample-data';

const say = (m: string) => console.error(`[demo] ${m}`);

/**
 * The whole product on one machine: a Temporal dev server with its Web UI, a source (PostgreSQL,
 * or MariaDB with `source: mysql`) and a target PostgreSQL server, a sample shop database, a
 * worker, and the migration of examples/demo-plan.yaml (demo-plan-mysql.yaml).
 */
export async function runDemo(opts: { rows: number; keep?: boolean; source?: 'postgres' | 'mysql'; json?: boolean }): Promise<number> {
  const base = resolve('.dbferry-demo');
  mkdirSync(base, { recursive: true });
  const mysql = opts.source === 'mysql';
  say(`starting a Temporal dev server, a ${mysql ? 'MariaDB' : 'PostgreSQL'} source server and a PostgreSQL target server…`);
  const started = await Promise.allSettled([
    startDevServer({ dbFile: join(base, `temporal-${Date.now()}.db`) }),
    mysql ? startMariaDb({ baseDir: base }) : startPostgresCluster({ baseDir: base }),
    startPostgresCluster({ baseDir: base }),
  ] as const);
  const servers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const stopAll = () => Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await stopAll();
    console.error(`[demo] could not start the local servers: ${String((failed as PromiseRejectedResult).reason)}`);
    return Exit.Failed;
  }
  const [temporal, source, target] = started.map((r) => (r as PromiseFulfilledResult<unknown>).value) as [
    Awaited<ReturnType<typeof startDevServer>>,
    { url(database?: string): string },
    Awaited<ReturnType<typeof startPostgresCluster>>,
  ];
  let connection: NativeConnection | undefined;
  try {
    say(`Temporal ${temporal.address}, Web UI ${temporal.uiUrl}`);
    say(`creating the sample database "shop" on the source (${opts.rows} orders)…`);
    if (mysql) await createMysqlSampleDatabase(source.url(), 'shop', opts.rows);
    else await createSampleDatabase(source.url(), 'shop', opts.rows);

    // The plan names these variables; the worker resolves them, so no password enters Temporal.
    process.env.DBFERRY_DEMO_SOURCE_URL = source.url('shop');
    process.env.DBFERRY_DEMO_TARGET_URL = target.url('shop_copy');
    const o = { address: temporal.address, namespace: 'default', taskQueue: 'dbferry-demo' };
    connection = await NativeConnection.connect({ address: o.address });
    const worker = await createWorker(o, connection);
    const plan = loadPlanFile(join(__dirname, '..', '..', 'examples', mysql ? 'demo-plan-mysql.yaml' : 'demo-plan.yaml'));

    const code = await worker.runUntil(
      withClient(o, async (client) => {
        await startMigration(client, o, plan);
        say(`migration ${plan.name} started; watch it at ${temporal.uiUrl}/namespaces/default/workflows/${migrationWorkflowId(plan.name)}`);
        const outcome = await waitForOutcome(client, plan.name, (s) => say(`phase: ${s.phase}`));
        const webUi = `${temporal.uiUrl}/namespaces/default/workflows/${migrationWorkflowId(plan.name)}`;
        if (opts.json) console.log(JSON.stringify({ outcome: outcome.kind, ...('report' in outcome ? { report: outcome.report } : 'status' in outcome ? { status: outcome.status } : {}), ...('message' in outcome ? { message: outcome.message } : {}), webUi }, null, 2));
        else {
          if (outcome.kind === 'completed') console.log(formatReport(outcome.report));
          else if (outcome.kind === 'awaiting-operator' || outcome.kind === 'caught-up') console.log(formatStatus(outcome.status));
          else console.log(outcome.message);
          console.log(`\nTemporal Web UI: ${webUi}`);
        }
        return WAIT_EXIT[outcome.kind];
      }),
    );
    if (opts.keep) {
      say('servers keep running (--keep); press Ctrl-C to stop them');
      await new Promise<void>((r) => process.once('SIGINT', () => r()));
    }
    return code;
  } catch (err) {
    console.error(`[demo] failed: ${err instanceof Error ? err.message : String(err)}`);
    return Exit.Failed;
  } finally {
    await connection?.close().catch(() => undefined);
    say('stopping the demo servers');
    await stopAll();
  }
}
