/**
 * The workload and the clocks of bench/mysql-cdc.sh: the same SQL against a MariaDB/MySQL or a
 * PostgreSQL source, the target (PostgreSQL) read back by polling. Times are this machine's clock
 * (commit returned on the source, first seen on the target), taken in one process per measurement.
 *
 *   node mysql-cdc-writer.js burst  --src URL --tgt URL --schema S --rows N --expect V
 *   node mysql-cdc-writer.js steady --src URL --tgt URL --schema S --rows N [--rate 3000] [--duration 60] …
 *   node mysql-cdc-writer.js verify --src URL --tgt URL --schema S
 *
 * The source URL's scheme picks the driver (mysql:// or postgres://). The source tables are
 * `t (id int primary key, v int, pad varchar(100))` and `hb (id int primary key, seq bigint)`
 * with one row id = 1, in the URL's database (MySQL) or public (PostgreSQL); on the target
 * they are in schema S. Every command prints one JSON object on stdout.
 *
 * burst: one `UPDATE t SET v = v + 1` (one transaction, autocommit). The clock starts when
 *   the statement returns (the source has committed). The target is probed every --probe-ms
 *   through the key (ids 1, N/2 and N at v = V); once the probe sees them, `count(*) … WHERE
 *   v = V` confirms; should the count still be short (the applier committed in parts), it is
 *   polled every --count-ms until it reaches --rows. Applied = the poll that saw all rows.
 * steady: --conns connections send single-row autocommit changes on a fixed schedule (change i
 *   at start + i/rate): three UPDATE t SET v = v + 1 of a random existing id for each INSERT of
 *   a new id from --first-id. A child process (the probe, so that its clocks do not wait on the
 *   writers' event loop) writes the heartbeat `UPDATE hb SET seq = k` every --hb-ms and notes
 *   when each commit returned; it polls the target's hb every --poll-ms and notes when each seq
 *   was first seen. Lag of k = first seen - commit returned (the poll interval bounds the error
 *   this adds). After --duration s the writers stop and the last heartbeat's lag is the catch-up.
 * verify: count, sum(id), sum(v), sum(length(pad)) of t and hb.seq on both sides.
 */
import { fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { createConnection, type ResultSetHeader } from 'mysql2/promise';
import { Client } from 'pg';

type Row = Record<string, unknown>;

interface Db {
  run(sql: string, params?: unknown[]): Promise<{ rows: Row[]; affected: number }>;
  end(): Promise<void>;
}

/** Milliseconds since the epoch, to the microsecond. */
const now = (): number => performance.timeOrigin + performance.now();

async function openDb(url: string): Promise<Db> {
  if (/^mysql:/i.test(url)) {
    const c = await createConnection({ uri: url, supportBigNumbers: true, bigNumberStrings: true });
    return {
      async run(sql, params = []) {
        const [r] = await c.query(sql, params);
        if (Array.isArray(r)) return { rows: r as Row[], affected: r.length };
        return { rows: [], affected: (r as ResultSetHeader).affectedRows };
      },
      end: () => c.end(),
    };
  }
  const c = new Client({ connectionString: url });
  await c.connect();
  return {
    async run(sql, params = []) {
      let n = 0;
      const r = await c.query<Row>(sql.replace(/\?/g, () => `$${++n}`), params);
      return { rows: r.rows, affected: r.rowCount ?? 0 };
    },
    end: () => c.end(),
  };
}

function args(argv: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!;
    if (!k.startsWith('--') || argv[i + 1] === undefined) throw new Error(`expected --name value pairs, got ${k}`);
    m.set(k.slice(2), argv[i + 1]!);
  }
  return m;
}

function need(a: Map<string, string>, k: string): string {
  const v = a.get(k);
  if (v === undefined) throw new Error(`--${k} is required`);
  return v;
}

function num(a: Map<string, string>, k: string, dflt?: number): number {
  const v = a.get(k);
  if (v === undefined && dflt !== undefined) return dflt;
  const n = Number(v);
  if (v === undefined || !Number.isFinite(n)) throw new Error(`--${k} must be a number`);
  return n;
}

/** A PostgreSQL identifier, quoted. */
const ident = (s: string): string => `"${s.replace(/"/g, '""')}"`;

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

async function burst(a: Map<string, string>): Promise<object> {
  const rows = num(a, 'rows');
  const expect = num(a, 'expect');
  const probeMs = num(a, 'probe-ms', 50);
  const countMs = num(a, 'count-ms', 200);
  const timeoutS = num(a, 'timeout', 600);
  const t = `${ident(need(a, 'schema'))}.t`;
  const src = await openDb(need(a, 'src'));
  const tgt = await openDb(need(a, 'tgt'));
  try {
    const probeIds = [1, Math.max(1, Math.floor(rows / 2)), rows];
    const probe = `SELECT count(*)::int AS n FROM ${t} WHERE id IN (${probeIds.join(', ')}) AND v = ${expect}`;
    const count = `SELECT count(*)::int AS n FROM ${t} WHERE v = ${expect}`;
    const before = Number((await tgt.run(count)).rows[0]!.n);
    const sent = now();
    const u = await src.run('UPDATE t SET v = v + 1');
    const committed = now();
    let probeSeen: number | undefined;
    let partialSeen: number | undefined;
    let counts = 0;
    for (;;) {
      const at = now();
      if (at - committed > timeoutS * 1000) throw new Error(`the target did not show ${rows} rows at v = ${expect} within ${timeoutS} s`);
      if (probeSeen === undefined) {
        const n = Number((await tgt.run(probe)).rows[0]!.n);
        if (n > 0) partialSeen ??= at;
        if (n < probeIds.length) {
          await sleep(Math.max(0, at + probeMs - now()));
          continue;
        }
        probeSeen = at;
      }
      const atCount = now();
      const n = Number((await tgt.run(count)).rows[0]!.n);
      counts++;
      if (n > 0) partialSeen ??= atCount;
      if (n >= rows) {
        // The probe saw the last rows at probeSeen; when the count agrees at once, that is the time.
        const applied = counts === 1 ? probeSeen : atCount;
        const applySeconds = (applied - committed) / 1000;
        return {
          rows,
          sourceRowsUpdated: u.affected,
          targetRowsBefore: before,
          sourceUpdateSeconds: r3((committed - sent) / 1000),
          applySeconds: r3(applySeconds),
          firstRowsVisibleSeconds: r3(((partialSeen ?? applied) - committed) / 1000),
          appliedAtOnce: counts === 1,
          rowsPerSecond: Math.round(rows / applySeconds),
          committedAt: new Date(committed).toISOString(),
          appliedAt: new Date(applied).toISOString(),
        };
      }
      await sleep(Math.max(0, atCount + countMs - now()));
    }
  } finally {
    await src.end();
    await tgt.end();
  }
}

/**
 * The writers, in this process: `conns` connections take change i when it is due (start + i/rate).
 * The heartbeat and the target's poller run in a child process (`probe`), so that their clocks
 * are not held up by this event loop's 3,000 round trips a second.
 */
async function steady(a: Map<string, string>): Promise<object> {
  const srcUrl = need(a, 'src');
  const rows = num(a, 'rows');
  const rate = num(a, 'rate', 3000);
  const duration = num(a, 'duration', 60);
  const conns = num(a, 'conns', 4);
  const firstId = num(a, 'first-id', rows + 1);
  const timeoutS = num(a, 'timeout', 300);

  const lanes = await Promise.all(Array.from({ length: conns }, () => openDb(srcUrl)));
  const probeArgs = [...a].filter(([k]) => k !== 'start').flatMap(([k, v]) => [`--${k}`, v]);
  const child = fork(__filename, ['probe', ...probeArgs], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  // Its exit can be seen before its last message is read: a second's grace for the message.
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => setTimeout(() => reject(new Error(`the probe exited with ${code} before it reported`)), 1000)),
  );
  exited.catch(() => undefined);
  const message = <T>(key: string) => Promise.race([exited, new Promise<T>((resolve) => child.on('message', (m: Record<string, T>) => key in m && resolve(m[key]!)))]);
  try {
    await message<boolean>('ready');
    const start = now() + 200;
    child.send({ start });
    const total = Math.round(rate * duration);
    let next = 0;
    let inserts = 0;
    let updates = 0;
    let maxBehindMs = 0;
    const lane = async (db: Db) => {
      for (;;) {
        const i = next++;
        if (i >= total) return;
        const due = start + (i * 1000) / rate;
        const wait = due - now();
        if (wait > 1) await sleep(wait);
        else maxBehindMs = Math.max(maxBehindMs, -wait);
        if (i % 4 === 3) {
          const id = firstId + inserts++;
          await db.run('INSERT INTO t (id, v, pad) VALUES (?, 0, ?)', [id, `steady ${id}`]);
        } else {
          updates++;
          await db.run('UPDATE t SET v = v + 1 WHERE id = ?', [1 + Math.floor(Math.random() * rows)]);
        }
      }
    };
    await Promise.all(lanes.map(lane));
    const elapsed = (now() - start) / 1000;
    const probe = await Promise.race([message<object>('result'), sleep(duration * 1000 + timeoutS * 1000 + 30_000, undefined, { ref: false })]);
    if (!probe) throw new Error('the probe did not report');
    return {
      rate,
      durationSeconds: duration,
      changes: inserts + updates,
      updates,
      inserts,
      achievedChangesPerSecond: Math.round((inserts + updates) / elapsed),
      writeSeconds: r3(elapsed),
      maxBehindScheduleMs: Math.round(maxBehindMs),
      nextInsertId: firstId + inserts,
      ...probe,
    };
  } finally {
    if (child.exitCode === null) child.kill();
    await Promise.all(lanes.map((d) => d.end().catch(() => undefined)));
  }
}

/**
 * The lag probe (a child of `steady`): the heartbeat `UPDATE hb SET seq = k` every hb-ms on the
 * source, each commit's return time noted; the target's hb polled every poll-ms, each seq's
 * first sighting noted. Lag of k = sighting - commit returned.
 */
async function probe(a: Map<string, string>): Promise<void> {
  const duration = num(a, 'duration', 60);
  const hbMs = num(a, 'hb-ms', 100);
  const pollMs = num(a, 'poll-ms', 20);
  const timeoutS = num(a, 'timeout', 300);
  const csv = a.get('samples-csv');
  const hb = `${ident(need(a, 'schema'))}.hb`;
  // Resolves once the message is on its way (a disconnect right after send() can drop it).
  const send = (m: object) => new Promise<void>((resolve, reject) => process.send!(m, undefined, {}, (err) => (err ? reject(err) : resolve())));
  const beat = await openDb(need(a, 'src'));
  const tgt = await openDb(need(a, 'tgt'));
  const acked = new Map<number, number>();
  const seen = new Map<number, number>();
  let lastSeen = Number((await tgt.run(`SELECT seq FROM ${hb} WHERE id = 1`)).rows[0]!.seq);
  const seq0 = Number((await beat.run('SELECT seq FROM hb WHERE id = 1')).rows[0]!.seq);
  if (seq0 !== lastSeen) throw new Error(`hb.seq is ${seq0} on the source but ${lastSeen} on the target: CDC is not caught up`);
  const start = await new Promise<number>((resolve) => {
    process.on('message', (m: { start?: number }) => m.start !== undefined && resolve(m.start));
    void send({ ready: true });
  });
  const end = start + duration * 1000;
  let beating = true;
  let lastBeat = seq0;
  let stopped = false;

  const heartbeat = async () => {
    for (let k = seq0 + 1; ; k++) {
      const due = start + (k - seq0) * hbMs;
      if (due > end) return;
      const wait = due - now();
      if (wait > 0) await sleep(wait);
      await beat.run('UPDATE hb SET seq = ? WHERE id = 1', [k]);
      acked.set(k, now());
      lastBeat = k;
    }
  };
  let polls = 0;
  let pollMsMax = 0;
  const poller = async () => {
    while (!stopped && (beating || lastSeen < lastBeat)) {
      const at = now();
      const s = Number((await tgt.run(`SELECT seq FROM ${hb} WHERE id = 1`)).rows[0]!.seq);
      const took = now() - at;
      polls++;
      pollMsMax = Math.max(pollMsMax, took);
      // Stamped with the time the query was sent (its snapshot is taken right after): a seq
      // first seen now became visible after the previous poll, so this overstates its lag by
      // less than one poll interval.
      for (let k = lastSeen + 1; k <= s; k++) seen.set(k, at);
      if (s > lastSeen) lastSeen = s;
      await sleep(Math.max(0, at + pollMs - now()));
    }
  };
  const polling = poller();
  polling.catch(() => undefined);
  try {
    await heartbeat();
    beating = false;
    const caughtUp = await Promise.race([polling.then(() => true), sleep(timeoutS * 1000, false, { ref: false })]);
    if (!caughtUp) throw new Error(`the last heartbeat (seq ${lastBeat}) was not visible on the target ${timeoutS} s after the writers stopped`);
    const lags: Array<{ k: number; ack: number; seen: number; lag: number }> = [];
    for (const [k, ack] of acked) {
      const s = seen.get(k);
      if (s !== undefined) lags.push({ k, ack, seen: s, lag: Math.max(0, s - ack) / 1000 });
    }
    if (csv) writeFileSync(csv, 'seq,committed_ms,seen_ms,lag_s\n' + lags.map((x) => `${x.k},${x.ack.toFixed(3)},${x.seen.toFixed(3)},${x.lag.toFixed(4)}`).join('\n') + '\n');
    const sorted = lags.map((x) => x.lag).sort((x, y) => x - y);
    const last = lags.find((x) => x.k === lastBeat);
    await send({
      result: {
        heartbeats: acked.size,
        samples: sorted.length,
        lagP50: r3(quantile(sorted, 0.5)),
        lagP90: r3(quantile(sorted, 0.9)),
        lagP99: r3(quantile(sorted, 0.99)),
        lagMax: r3(sorted[sorted.length - 1] ?? NaN),
        samplesOver300ms: sorted.filter((x) => x > 0.3).length,
        catchUpSeconds: last ? r3(last.lag) : null,
        targetPolls: polls,
        targetPollMsMax: r3(pollMsMax),
      },
    });
  } finally {
    stopped = true;
    await polling.catch(() => undefined);
    await beat.end().catch(() => undefined);
    await tgt.end().catch(() => undefined);
  }
}

async function verify(a: Map<string, string>): Promise<object> {
  const schema = ident(need(a, 'schema'));
  const src = await openDb(need(a, 'src'));
  const tgt = await openDb(need(a, 'tgt'));
  try {
    const q = (t: string, hb: string) =>
      `SELECT (SELECT count(*) FROM ${t}) AS n, (SELECT sum(id) FROM ${t}) AS ids, (SELECT sum(v) FROM ${t}) AS vs,
              (SELECT sum(length(pad)) FROM ${t}) AS pads, (SELECT seq FROM ${hb} WHERE id = 1) AS seq`;
    const norm = (r: Row) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, String(v)]));
    const s = norm((await src.run(q('t', 'hb'))).rows[0]!);
    const t = norm((await tgt.run(q(`${schema}.t`, `${schema}.hb`))).rows[0]!);
    return { equal: JSON.stringify(s) === JSON.stringify(t), source: s, target: t };
  } finally {
    await src.end();
    await tgt.end();
  }
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  const a = args(rest);
  if (cmd === 'probe') {
    await probe(a);
    process.disconnect?.();
    return;
  }
  const run = { burst, steady, verify }[cmd ?? ''];
  if (!run) throw new Error('usage: mysql-cdc-writer.js burst|steady|verify --src URL --tgt URL --schema S …');
  process.stdout.write(JSON.stringify(await run(a)) + '\n');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
