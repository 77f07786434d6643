/**
 * Micro-bench of the CDC change applier against a real target, outside jest (whose module
 * sandbox makes this kind of code 2-3x slower, so the rates the integration test prints are low).
 *
 *   npx tsc -p tsconfig.json --noEmit false --outDir .tmp/bench-build
 *   node .tmp/bench-build/bench/cdc-apply-bench.js postgres://user:pw@host:5432/db [rows] [maxRows]
 *
 * Uses `pgbench_accounts` when the database has one (`pgbench -i -s 100` for the 10 M-row
 * benchmark table), else makes a 1 M-row `cdc_bench_accounts`. Each run updates the next
 * `rows` accounts never updated by this bench (as one UPDATE statement's rows come: in key
 * order), so start from a fresh table to compare runs. Then it feeds a stream of pgbench-like
 * transactions (one account update, one history insert) committed every 300 transactions.
 * It prints rows/s and the CPU time of this process and of the target backend (when the
 * target runs on this machine).
 */
import { readFileSync } from 'node:fs';
import { Client } from 'pg';
import { ChangeApplier, type ApplyTable, type Change } from '../activities/apply/apply';
import type { Tuple } from '../activities/apply/tuple';

async function main(): Promise<void> {
  const [url, rowsArg, maxRowsArg] = process.argv.slice(2);
  if (!url) throw new Error('usage: cdc-apply-bench.js <postgres url> [rows] [maxRows]');
  const rows = Number(rowsArg ?? 1_000_000);
  const maxRows = maxRowsArg ? Number(maxRowsArg) : undefined;
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    const name = (await c.query(`SELECT to_regclass('public.pgbench_accounts') IS NOT NULL AS ok`)).rows[0].ok ? 'pgbench_accounts' : 'cdc_bench_accounts';
    if (name === 'cdc_bench_accounts') {
      await c.query(`CREATE TABLE IF NOT EXISTS cdc_bench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84))`);
      await c.query(`INSERT INTO cdc_bench_accounts SELECT g, (g - 1) / 100000 + 1, 0, '' FROM generate_series(1, 1000000) g ON CONFLICT DO NOTHING`);
    }
    await c.query(`CREATE TABLE IF NOT EXISTS cdc_bench_progress (next_aid int NOT NULL)`);
    await c.query(`CREATE TABLE IF NOT EXISTS cdc_bench_history (hid bigint PRIMARY KEY, tid int, bid int, aid int, delta int, mtime timestamp, filler char(22))`);
    const total = Number((await c.query(`SELECT max(aid) AS n FROM ${name}`)).rows[0].n);
    const from = Number((await c.query(`SELECT coalesce(max(next_aid), 1) AS n FROM cdc_bench_progress`)).rows[0].n);
    if (from + rows - 1 > total) throw new Error(`only ${total - from + 1} accounts left that this bench has not updated: start from a fresh table`);
    await c.query(`INSERT INTO cdc_bench_progress VALUES ($1)`, [from + rows]);

    const pid: number = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    await c.query('SET session_replication_role = replica');
    const accounts: ApplyTable = { key: `public.${name}`, schema: 'public', name, columns: ['aid', 'bid', 'abalance', 'filler'], keyColumns: [0] };
    const history: ApplyTable = { key: 'public.cdc_bench_history', schema: 'public', name: 'cdc_bench_history', columns: ['hid', 'tid', 'bid', 'aid', 'delta', 'mtime', 'filler'], keyColumns: [0] };
    const filler = ' '.repeat(84);
    const b = (v: string | number) => Buffer.from(String(v));
    // Made on the fly, as a decoder makes them: a retained heap of all changes would bill its GC to the applier.
    const account = (aid: number, i: number): Tuple => [b(aid), b(Math.ceil(aid / 100000)), b(i % 10000), Buffer.from(filler)];

    const bulk = await measure(pid, async () => {
      const applier = new ChangeApplier(c, { maxRows });
      await c.query('BEGIN');
      for (let i = 0; i < rows; i++) {
        await applier.add({ kind: 'update', table: accounts, position: String(i), new: account(from + i, i) });
        // A socket read every few hundred changes, as the decoder's stream gives them.
        if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
      }
      await applier.flush();
      await c.query('COMMIT');
    });
    console.log(`one ${rows}-row UPDATE transaction on ${name} (${total} rows): ${rate(rows, bulk, 'rows')}`);

    const txs = 30_000;
    const perCommit = 300;
    let hid = Number((await c.query('SELECT coalesce(max(hid), 0) AS n FROM cdc_bench_history')).rows[0].n);
    const applier = new ChangeApplier(c);
    const latencies: number[] = [];
    const small = await measure(pid, async () => {
      for (let i = 0; i < txs; i += perCommit) {
        const t0 = process.hrtime.bigint();
        await c.query('BEGIN');
        for (let j = i; j < i + perCommit; j++) {
          const aid = 1 + ((j * 7919) % total);
          const changes: Change[] = [
            { kind: 'update', table: accounts, position: String(j), new: account(aid, j) },
            { kind: 'insert', table: history, position: String(j), new: [b(++hid), b(1 + (j % 1000)), b(1 + (j % 100)), b(aid), b((j % 10000) - 5000), b('2024-05-01 12:00:00.123456'), null] },
          ];
          for (const change of changes) await applier.add(change);
          if (j % 250 === 249) await new Promise((resolve) => setImmediate(resolve));
        }
        await applier.flush();
        await c.query('COMMIT');
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    });
    latencies.sort((x, y) => x - y);
    console.log(
      `${txs} pgbench-like transactions, committed every ${perCommit}: ${rate(txs, small, 'tx')}; ` +
        `per commit: median ${latencies[latencies.length >> 1]!.toFixed(1)} ms, p99 ${latencies[Math.floor(latencies.length * 0.99)]!.toFixed(1)} ms`,
    );
  } finally {
    await c.end();
  }
}

interface Measured {
  ms: number;
  cpuMs: number;
  backendCpuMs?: number;
}

async function measure(pid: number, run: () => Promise<void>): Promise<Measured> {
  const backend0 = backendCpu(pid);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await run();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = process.cpuUsage(cpu0);
  const backend1 = backendCpu(pid);
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000, backendCpuMs: backend0 !== undefined && backend1 !== undefined ? backend1 - backend0 : undefined };
}

function rate(n: number, m: Measured, unit: string): string {
  const backend = m.backendCpuMs !== undefined ? `, target backend cpu ${m.backendCpuMs} ms` : '';
  return `${Math.round(n / (m.ms / 1000))} ${unit}/s (${m.ms.toFixed(0)} ms; this process cpu ${m.cpuMs.toFixed(0)} ms${backend})`;
}

/** CPU time of a local process in ms (Linux, clock ticks of 10 ms); undefined when it is not local. */
function backendCpu(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
