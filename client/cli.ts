import { Command, CommanderError, Option } from 'commander';
import type { DecisionAction } from '../plan/migration-types';
import { TEMPORAL_DEFAULTS } from '../plan/temporal-options';
import { CliError, Exit } from './exit-codes';
import {
  cleanupMigration,
  decide,
  listMigrations,
  pauseOrResume,
  requestCutover,
  withLiveCdc,
  liveProgress,
  requireMigration,
  runCheck,
  startMigration,
  statusFromDescription,
  WAIT_EXIT,
  waitForOutcome,
} from './migrations';
import { loadPlanFile } from './plan-file';
import { cdcProgress, formatPreflight, formatReport, formatStatus } from './render';
import { estimateLoad } from '../plan/capacity';
import { setupNamespace } from './setup-namespace';
import { watchMigration } from './watch';
import { temporalOptions, withClient, type TemporalFlags, type TemporalOptions } from './temporal';

// gRPC gives TLS the address's host as the server name; for an IP address Node then warns
// (DEP0123) on stderr, into output that scripts and log pipelines parse. The certificate is still
// checked against the address.
const emitWarning = process.emitWarning.bind(process) as (...args: unknown[]) => void;
process.emitWarning = ((...args: unknown[]) => {
  if (args.slice(1).some((a) => a === 'DEP0123' || (typeof a === 'object' && a !== null && (a as { code?: unknown }).code === 'DEP0123'))) return;
  emitWarning(...args);
}) as typeof process.emitWarning;

const program = new Command('dbferry')
  .description('Database migrations (PostgreSQL and MySQL/MariaDB → PostgreSQL) as durable Temporal workflows')
  .version(require('../../package.json').version as string)
  .addOption(new Option('--address <host:port>', `Temporal frontend (env TEMPORAL_ADDRESS, or the profile's; default ${TEMPORAL_DEFAULTS.address})`))
  .addOption(new Option('--namespace <ns>', `Temporal namespace (env TEMPORAL_NAMESPACE, or the profile's; default ${TEMPORAL_DEFAULTS.namespace})`))
  .addOption(new Option('--profile <name>', 'the profile of temporal.toml to use (env TEMPORAL_PROFILE; file TEMPORAL_CONFIG_FILE)'))
  .addOption(new Option('--task-queue <name>', `task queue of the dbferry workers (env DBFERRY_TASK_QUEUE; default ${TEMPORAL_DEFAULTS.taskQueue})`))
  .showHelpAfterError()
  .exitOverride()
  .addHelpText(
    'after',
    `
Temporal connection: as the Temporal CLI (envconfig): a temporal.toml profile, then TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_CLIENT_CERT_PATH,
TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_NAME, TEMPORAL_TLS=true, then the flags above.

Exit codes: 0 ok · 1 failed · 2 bad plan or arguments · 3 awaiting operator · 4 unknown migration
            5 refused · 6 Temporal unreachable · 7 aborted`,
  );

function temporal(): TemporalOptions {
  return temporalOptions(program.opts<TemporalFlags>());
}

const print = (json: boolean | undefined, obj: unknown, text: () => string) => console.log(json ? JSON.stringify(obj, null, 2) : text());

program
  .command('start <plan>')
  .description('start the migration of a plan (or find the running one of that name)')
  .option('--wait', 'return when it completes, pauses for an operator, or fails; with CDC, when CDC has caught up')
  .option('--json', 'machine-readable output')
  .action(async (planPath: string, opts: { wait?: boolean; json?: boolean }) => {
    const plan = loadPlanFile(planPath);
    const o = temporal();
    await withClient(o, async (client) => {
      const start = await startMigration(client, o, plan);
      const id = start.handle.workflowId;
      if (!opts.json) {
        console.error(
          start.alreadyCompleted
            ? `migration ${plan.name} already completed (workflow ${id}); choose another name to migrate again`
            : start.started
              ? `started migration ${plan.name} (workflow ${id})`
              : `migration ${plan.name} is already running (workflow ${id})`,
        );
      }
      if (!opts.wait) {
        if (opts.json) console.log(JSON.stringify({ name: plan.name, workflowId: id, started: start.started, alreadyCompleted: !!start.alreadyCompleted }));
        return;
      }
      const outcome = await waitForOutcome(
        client,
        plan.name,
        (s) => {
          if (!opts.json) console.error(`  phase: ${s.phase}`);
        },
        { untilCaughtUp: true },
      );
      if (outcome.kind === 'completed') print(opts.json, outcome.report, () => formatReport(outcome.report));
      else if (outcome.kind === 'caught-up') {
        print(opts.json, { ...outcome.status, lag: outcome.cdc }, () => `${formatStatus(withLiveCdc(outcome.status, outcome.cdc), outcome.cdc)}\n\nCDC has caught up; cut over with: dbferry cutover ${plan.name}`);
      }
      else if (outcome.kind === 'awaiting-operator') print(opts.json, outcome.status, () => formatStatus(outcome.status));
      else print(opts.json, outcome, () => (outcome.status ? formatStatus(outcome.status) + '\n' : '') + outcome.message);
      process.exitCode = WAIT_EXIT[outcome.kind];
    });
  });

program
  .command('status <name>')
  .description('phase, steps, per-table statistics, CDC lag and the pending failure (works with no worker up)')
  .option('--json', 'machine-readable output')
  .action(async (name: string, opts: { json?: boolean }) => {
    await withClient(temporal(), async (client) => {
      const d = await requireMigration(client, name);
      const status = statusFromDescription(d);
      if (!status) throw new CliError(Exit.Failed, `migration ${name} has not published a status yet (workflow ${d.status.name})`);
      const live = await liveProgress(client, d);
      const cdc = cdcProgress(live);
      const shown = withLiveCdc(status, cdc);
      const lag = cdc ? { bytes: cdc.lagBytes, seconds: cdc.lagSeconds, caughtUp: cdc.caughtUp, appliedPosition: cdc.appliedPosition, sourcePosition: cdc.sourcePosition, at: cdc.at } : null;
      const json = { ...shown, lag, workflow: { id: d.workflowId, runId: d.runId, status: d.status.name }, live };
      print(opts.json, json, () => formatStatus(shown, live.length ? live : undefined));
    });
  });

program
  .command('watch <name>')
  .description('live progress: a bar per table or chunk being loaded (throughput, ETA), CDC lag; ends with the migration')
  .option('--json', 'one JSON object per second instead of bars')
  .option('--interval <ms>', 'refresh interval', (v) => positiveInt(v, '--interval'), 1000)
  .action(async (name: string, opts: { json?: boolean; interval: number }) => {
    await withClient(temporal(), async (client) => {
      process.exitCode = await watchMigration(client, name, { json: opts.json, intervalMs: opts.interval });
    });
  });

program
  .command('list')
  .description('migrations and their phases')
  .option('--json', 'machine-readable output')
  .action(async (opts: { json?: boolean }) => {
    await withClient(temporal(), async (client) => {
      const list = await listMigrations(client);
      print(opts.json, list, () =>
        list.length === 0 ? 'no migrations' : list.map((m) => `${m.name.padEnd(24)} ${m.phase.padEnd(18)} ${listedState(m).padEnd(10)} ${m.startTime}`).join('\n'),
      );
    });
  });

program
  .command('check <plan>')
  .description("validate the plan, run preflight on the workers, print the target schema and an estimate of the migration's duration")
  .option('--json', 'machine-readable output')
  .action(async (planPath: string, opts: { json?: boolean }) => {
    const plan = loadPlanFile(planPath);
    const o = temporal();
    await withClient(o, async (client) => {
      const checked = await runCheck(client, o, plan);
      // The rates behind it were measured for PostgreSQL sources loaded by dbferry itself.
      const estimate = plan.source.engine === 'postgres' && plan.runner === 'native' && (plan.mode === 'full-load' || plan.mode === 'full-load-and-cdc') ? estimateLoad(checked.selected) : undefined;
      const report = estimate ? { ...checked, estimate } : checked;
      print(opts.json, report, () => formatPreflight(report));
      if (report.findings.some((f) => f.severity === 'blocking')) process.exitCode = Exit.Failed;
    });
  });

for (const action of ['retry', 'skip', 'abort'] as DecisionAction[]) {
  const help = {
    retry: 'run the failed step again from its last durable checkpoint',
    skip: 'skip the failed step (refused where it would lose data); on a table dropped from the source, take that table out of the migration',
    abort: 'end the migration (also while CDC runs: what CDC holds on the source, a PostgreSQL slot and publication, is dropped) and report what is left where',
  }[action];
  program
    .command(`${action} <name>`)
    .description(help)
    .option('--reason <text>', 'why (recorded in the migration history)')
    .option('--json', 'machine-readable output')
    .action(async (name: string, opts: { reason?: string; json?: boolean }) => {
      await withClient(temporal(), async (client) => {
        const message = await decide(client, name, action, opts.reason);
        print(opts.json, { name, action, ...(opts.reason ? { reason: opts.reason } : {}), message }, () => message);
      });
    });
}

for (const action of ['pause', 'resume'] as const) {
  program
    .command(`${action} <name>`)
    .description(action === 'pause' ? 'hold CDC apply (the source keeps the changes: a PostgreSQL slot; a MySQL binlog within its retention)' : 'continue CDC apply after a pause')
    .option('--reason <text>', 'why (recorded in the migration status)')
    .option('--json', 'machine-readable output')
    .action(async (name: string, opts: { reason?: string; json?: boolean }) => {
      await withClient(temporal(), async (client) => {
        const message = await pauseOrResume(client, name, action, opts.reason);
        print(opts.json, { name, action, ...(opts.reason ? { reason: opts.reason } : {}), message }, () => message);
      });
    });
}

program
  .command('cutover <name>')
  .description('check that writes have stopped, drain CDC, validate, carry sequences, remove what CDC holds on the source (a PostgreSQL slot and publication)')
  .option('--wait', 'return when the cutover has completed (prints the report)')
  .option('--json', 'machine-readable output')
  .action(async (name: string, opts: { wait?: boolean; json?: boolean }) => {
    await withClient(temporal(), async (client) => {
      const ack = await requestCutover(client, name);
      if (!opts.json || !opts.wait) {
        const line = `writes stopped (none for ${ack.quietSeconds} s); cutover marker written at ${ack.markerPosition}: CDC drains, then validate and finalize`;
        if (opts.json) console.log(JSON.stringify(ack));
        else console.error(line);
      }
      if (!opts.wait) return;
      const outcome = await waitForOutcome(client, name, (s) => {
        if (!opts.json) console.error(`  phase: ${s.phase}`);
      });
      if (outcome.kind === 'completed') print(opts.json, outcome.report, () => formatReport(outcome.report));
      else if (outcome.kind === 'awaiting-operator' || outcome.kind === 'caught-up') print(opts.json, outcome.status, () => formatStatus(outcome.status));
      else print(opts.json, outcome, () => (outcome.status ? formatStatus(outcome.status) + '\n' : '') + outcome.message);
      process.exitCode = WAIT_EXIT[outcome.kind];
    });
  });

program
  .command('cleanup <name>')
  .description(
    'drop what a finished, failed or forgotten migration left behind: on the source (PostgreSQL: replication slot, publication; binlog CDC leaves nothing), and in AWS for runner aws (the DMS task, endpoints, certificates, event subscription, and the replication instance when dbferry created it)',
  )
  .option('--json', 'machine-readable output')
  .action(async (name: string, opts: { json?: boolean }) => {
    const o = temporal();
    await withClient(o, async (client) => {
      const r = await cleanupMigration(client, o, name);
      print(opts.json, r, () => [...r.dropped.map((x) => `dropped ${x}`), ...r.kept.map((x) => `kept ${x}`)].join('\n'));
    });
  });

program
  .command('worker')
  .description('run a worker: it polls the task queue and one of its own (for MySQL loaders beside their read point), and resolves the plan secrets from its own environment')
  .option('--max-activities <n>', 'activities run at once', (v) => positiveInt(v, '--max-activities'), 20)
  .addOption(new Option('--metrics-port <n>', 'serve Prometheus metrics at http://0.0.0.0:<n>/metrics (the SDK\'s worker metrics and dbferry\'s)').env('DBFERRY_METRICS_PORT').argParser((v) => positiveInt(v, '--metrics-port')))
  .addOption(new Option('--log-format <format>', 'log lines on stderr: text, or json (one object per line)').env('DBFERRY_LOG_FORMAT').argParser((v) => oneOfFlag(v.toLowerCase(), ['text', 'json'], '--log-format')).default('text'))
  .addOption(new Option('--log-level <level>', 'the least severe level logged').env('DBFERRY_LOG_LEVEL').argParser((v) => oneOfFlag(v.toUpperCase(), LOG_LEVELS, '--log-level')).default('INFO'))
  .action(async (opts: { maxActivities: number; metricsPort?: number; logFormat: 'text' | 'json'; logLevel: 'TRACE' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' }) => {
    const o = temporal();
    // Temporal unreachable: exit 6 naming the address, as every other command (not the SDK's raw transport error).
    await withClient(o, async () => undefined);
    const [{ runWorker }, { installWorkerRuntime }] = await Promise.all([import('../worker/worker'), import('../worker/runtime')]);
    installWorkerRuntime({ metricsPort: opts.metricsPort, logFormat: opts.logFormat, logLevel: opts.logLevel });
    await runWorker({ ...o, maxConcurrentActivities: opts.maxActivities });
  });

program
  .command('init <file>')
  .description("write a commented starter plan for two URL references (the source engine from the URL's scheme, when this shell can read it); - prints it")
  .requiredOption('--source <ref>', 'the source URL: env:VAR, file:PATH, aws-secret:ARN, or an inline URL without a password')
  .requiredOption('--target <ref>', 'the target (PostgreSQL) URL, as --source')
  .addOption(new Option('--source-engine <engine>', 'postgres or mysql, when the source URL cannot be read here').argParser((v) => sourceEngine(v, '--source-engine')))
  .option('--name <name>', "the migration's name (default: from the source URL's database)")
  .option('--force', 'overwrite the file when it exists')
  .option('--json', 'machine-readable output')
  .action(async (file: string, opts: { source: string; target: string; sourceEngine?: 'postgres' | 'mysql'; name?: string; force?: boolean; json?: boolean }) => {
    const { initPlan } = await import('./init-plan');
    const { text, result } = initPlan(file, opts);
    if (file === '-' && !opts.json) process.stdout.write(text);
    else print(opts.json, file === '-' ? { ...result, plan: text } : result, () => `wrote ${file} (migration ${result.name}, source ${result.sourceEngine}): edit it, then dbferry check ${file}`);
  });

program
  .command('schema')
  .description("print the plan file's JSON Schema (for editors: # yaml-language-server: $schema=<file>)")
  .action(async () => {
    const { planJsonSchema } = await import('../plan/plan-json-schema');
    console.log(JSON.stringify(planJsonSchema(), null, 2));
  });

program
  .command('dev-server')
  .description("a local Temporal dev server with dbferry's search attributes registered (foreground)")
  .option('--port <n>', 'frontend port', (v) => positiveInt(v, '--port'), 7233)
  .option('--ui-port <n>', 'Web UI port', (v) => positiveInt(v, '--ui-port'), 8233)
  .option('--db-file <file>', 'keep history in this SQLite file (in memory otherwise)')
  .action(async (opts: { port: number; uiPort: number; dbFile?: string }) => {
    const { runDevServerForeground } = await import('../local/temporal-dev-server');
    process.exitCode = await runDevServerForeground(opts);
  });

program
  .command('setup-namespace')
  .description("register dbferry's search attributes on an existing Temporal cluster")
  .option('--json', 'machine-readable output')
  .action(async (opts: { json?: boolean }) => {
    const o = temporal();
    await withClient(o, async (client) => {
      const r = await setupNamespace(client, o.namespace);
      print(opts.json, r, () => r.message);
    });
  });

program
  .command('demo')
  .description('the local demo migration: Temporal dev server, a source and a target server, a sample shop database')
  .option('--rows <n>', 'orders in the sample database', (v) => positiveInt(v, '--rows'), 150000)
  .option('--source <engine>', 'the source: postgres, or mysql (a throwaway MariaDB server)', (v) => sourceEngine(v, '--source'), 'postgres')
  .option('--keep', 'keep the servers and the Web UI running until Ctrl-C')
  .option('--json', 'the report as JSON (with the Web UI link)')
  .action(async (opts: { rows: number; keep?: boolean; source: 'postgres' | 'mysql'; json?: boolean }) => {
    const { runDemo } = await import('../local/demo');
    process.exitCode = await runDemo(opts);
  });

/**
 * The workflow's state where it adds to the phase: an aborted migration's workflow ends FAILED
 * by design (MigrationAborted), which `aborted FAILED` made look like a second failure.
 */
function listedState(m: { phase: string; status: string }): string {
  if (m.phase === 'aborted') return 'ended';
  return m.status.toLowerCase();
}

function positiveInt(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new CliError(Exit.BadInput, `${flag}: expected a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

const LOG_LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'] as const;

function oneOfFlag<T extends string>(v: string, allowed: readonly T[], flag: string): T {
  if (!(allowed as readonly string[]).includes(v)) throw new CliError(Exit.BadInput, `${flag}: expected ${allowed.slice(0, -1).join(', ')} or ${allowed.at(-1)}, got ${JSON.stringify(v)}`);
  return v as T;
}

function sourceEngine(v: string, flag: string): 'postgres' | 'mysql' {
  return oneOfFlag(v, ['postgres', 'mysql'] as const, flag);
}

// The SDK runtime, before a command runs: the worker installs its own (logger, metrics).
program.hook('preAction', async (_program, command) => {
  if (command.name() === 'worker') return;
  // The SDK's INFO lines (worker state changes) drown the CLI's own output.
  const { Runtime, DefaultLogger } = await import('@temporalio/worker');
  // Only a worker needs the SDK to turn SIGINT/SIGTERM into a graceful shutdown; for every other
  // command the SDK would swallow the first Ctrl-C (and a `demo` handles its own).
  const level = process.env.DBFERRY_LOG_LEVEL ? oneOfFlag(process.env.DBFERRY_LOG_LEVEL.toUpperCase(), LOG_LEVELS, 'DBFERRY_LOG_LEVEL') : 'WARN';
  Runtime.install({
    logger: new DefaultLogger(level),
    ...(command.name() === 'demo' ? {} : { shutdownSignals: [] }),
  });
});

function jsonRequested(): boolean {
  return process.argv.slice(2).includes('--json');
}

async function main() {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has printed its message (help, version, or what was wrong with the arguments).
      if (err.exitCode !== 0 && jsonRequested()) console.log(JSON.stringify({ error: { exitCode: Exit.BadInput, message: err.message.replace(/^error: /, '') } }));
      process.exit(err.exitCode === 0 ? 0 : Exit.BadInput);
    }
    if (err instanceof CliError) {
      console.error(`dbferry: ${err.message}`);
      // A script reading --json output gets JSON on failure too (the exit code says which failure).
      if (jsonRequested()) console.log(JSON.stringify({ error: { exitCode: err.exitCode, message: err.message } }));
      process.exit(err.exitCode);
    }
    console.error(`dbferry: ${err instanceof Error ? err.message : String(err)}`);
    if (jsonRequested()) console.log(JSON.stringify({ error: { exitCode: Exit.Failed, message: err instanceof Error ? err.message : String(err) } }));
    if (process.env.DBFERRY_DEBUG) console.error(err);
    process.exit(Exit.Failed);
  }
}

void main();
