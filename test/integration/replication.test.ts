import { createServer, connect as netConnect, type Socket } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { closeQuietly, type PgEndpoint } from '../../activities/pg/connection';
import {
  createSlot,
  createSlotWithSnapshot,
  dropSlot,
  openReplicationStream,
  type ReplicationStream,
} from '../../activities/postgres/cdc/replication';
import { UNCHANGED, type PgoutputMessage, type Tuple, type WalMessage } from '../../activities/postgres/cdc/types';
import { FailureType } from '../../plan/failure-types';
import { formatLsn, parseLsn } from '../../activities/postgres/lsn';
import { createDatabase, dropDatabase, uniqueName, withClient } from '../support/databases';
import { oneByOne } from '../support/batches';

/**
 * Logical replication against a real PostgreSQL (wal_level=logical): the slot's exported
 * snapshot, every pgoutput message kind as the server really sends it, confirmations moving the
 * slot, and a killed walsender ending the stream with a Transient failure.
 */
describe('pgoutput replication on a real server', () => {
  const db = uniqueName('repl');
  let url: string;
  let ep: PgEndpoint;
  const slots: string[] = [];
  const streams: ReplicationStream[] = [];

  function newSlot(): string {
    const s = uniqueName('slot');
    slots.push(s);
    return s;
  }

  async function open(slot: string, startLsn: bigint): Promise<ReplicationStream> {
    const s = await openReplicationStream(ep, { slot, publication: 'dbferry_pub', startLsn });
    streams.push(s);
    return s;
  }

  const sql = (text: string, values?: unknown[]) => withClient(url, (c) => c.query(text, values));

  beforeAll(async () => {
    url = await createDatabase('source', db);
    ep = { side: 'source', url, description: `source test ${db}`, database: db, secrets: [] };
    await sql(`
      CREATE TYPE mood AS ENUM ('sad', 'ok');
      CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL, note text, big text, m mood);
      ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL;
      CREATE TABLE other (id serial PRIMARY KEY, v text);
      CREATE TABLE unpublished (id int);
      CREATE PUBLICATION dbferry_pub FOR TABLE items, other;`);
  });

  afterAll(async () => {
    await Promise.all(streams.map((s) => s.close()));
    // A database with a slot cannot be dropped, and an active slot blocks the cluster's shutdown.
    if (url) await withClient(url, async (c) => {
      for (const s of slots) await dropSlot(c, s);
    });
    await dropDatabase('source', db);
  });

  /** Reads until `commits` transactions have committed, bounded in time; keepalives left out. */
  async function collect(stream: ReplicationStream, commits: number, timeoutMs = 30_000): Promise<WalMessage[]> {
    const out: WalMessage[] = [];
    let seen = 0;
    const timer = setTimeout(() => void stream.close(), timeoutMs);
    try {
      for await (const m of oneByOne(stream)) {
        // The server sends keepalives whenever it likes (see their own test).
        if (m.message.tag === 'keepalive') continue;
        out.push(m);
        if (m.message.tag === 'commit' && ++seen === commits) break;
      }
    } finally {
      clearTimeout(timer);
    }
    if (seen < commits) throw new Error(`only ${seen} of ${commits} commits within ${timeoutMs} ms: ${summary(out).join(' ')}`);
    return out;
  }

  const text = (t: Tuple) => t.map((v) => (v === null || v === UNCHANGED ? v : v.toString('utf8')));

  /** Tags, with runs of one tag collapsed as `tag×n`. */
  function summary(ms: WalMessage[]): string[] {
    const out: string[] = [];
    for (const { message: m } of ms) {
      const label = m.tag === 'relation' || m.tag === 'type' ? `${m.tag}:${m.name}` : m.tag;
      const last = out[out.length - 1];
      const run = last?.match(/^(.*)×(\d+)$/);
      if (last === label) out[out.length - 1] = `${label}×2`;
      else if (run && run[1] === label) out[out.length - 1] = `${label}×${Number(run[2]) + 1}`;
      else out.push(label);
    }
    return out;
  }

  function only<T extends PgoutputMessage['tag']>(ms: WalMessage[], tag: T): Array<Extract<PgoutputMessage, { tag: T }>> {
    return ms.map((m) => m.message).filter((m): m is Extract<PgoutputMessage, { tag: T }> => m.tag === tag);
  }

  async function activePid(slot: string): Promise<number | null> {
    const r = await sql('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    return r.rows[0]?.active_pid ?? null;
  }

  async function eventually<T>(what: string, fn: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('streams every message kind from the consistent point of an exported snapshot', async () => {
    const slot = newSlot();
    const holder = await createSlotWithSnapshot(ep, slot);
    try {
      // A change after the slot's creation: the stream has it, the snapshot must not.
      await sql(`INSERT INTO other (v) VALUES ('after the snapshot')`);
      const inSnapshot = await withClient(url, async (c) => {
        await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        await c.query(`SET TRANSACTION SNAPSHOT '${holder.snapshot}'`);
        const r = await c.query('SELECT count(*)::int AS n FROM other');
        await c.query('COMMIT');
        return r.rows[0].n;
      });
      expect(inSnapshot).toBe(0);
      expect((await sql('SELECT count(*)::int AS n FROM other')).rows[0].n).toBe(1);
    } finally {
      await closeQuietly(holder.client);
    }
    // The snapshot died with its connection.
    await expect(
      withClient(url, async (c) => {
        await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        await c.query(`SET TRANSACTION SNAPSHOT '${holder.snapshot}'`);
      }),
    ).rejects.toThrow(/invalid snapshot identifier/);

    // 100 kB that does not compress, stored out of line: updates that leave it alone send 'u'.
    await sql(`INSERT INTO items VALUES (1, 5, 'first', (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 3200)), 'ok')`);
    const bigValue: string = (await sql('SELECT big FROM items WHERE id = 1')).rows[0].big;
    expect(bigValue).toHaveLength(102_400);
    expect((await sql(`SELECT pg_column_size(big) AS n FROM items`)).rows[0].n).toBeGreaterThan(100_000);
    await sql(`UPDATE items SET qty = 6 WHERE id = 1`);
    await sql(`UPDATE items SET id = 2 WHERE id = 1`);
    await sql(`DELETE FROM items WHERE id = 2`);
    await sql(`INSERT INTO unpublished VALUES (1)`); // not in the publication: no transaction at all
    await sql(`TRUNCATE other RESTART IDENTITY`);
    await sql(`SELECT pg_logical_emit_message(true, 'dbferry', 'hello')`);
    await sql(`SELECT pg_logical_emit_message(false, 'dbferry', 'not transactional')`);
    await withClient(url, async (c) => {
      await c.query('BEGIN');
      await c.query(`INSERT INTO items (id, qty, note) SELECT g, g, 'n' || g FROM generate_series(10, 1009) g`);
      await c.query(`UPDATE items SET note = NULL WHERE id = 10`);
      await c.query(`DELETE FROM items WHERE id = 11`);
      await c.query(`SELECT pg_logical_emit_message(true, 'dbferry', 'inside')`);
      await c.query('COMMIT');
    });

    const stream = await open(slot, holder.consistentPoint);
    const ms = await collect(stream, 8);
    await stream.close();

    expect(summary(ms)).toEqual([
      'begin', 'relation:other', 'insert', 'commit',
      'begin', 'type:mood', 'relation:items', 'insert', 'commit',
      'begin', 'update', 'commit',
      'begin', 'update', 'commit',
      'begin', 'delete', 'commit',
      // TRUNCATE gives the table a new file: the relation cache entry is invalidated and the
      // relation message sent again before the truncate.
      'begin', 'relation:other', 'truncate', 'commit',
      'begin', 'message', 'commit',
      'message',
      'begin', 'insert×1000', 'update', 'delete', 'message', 'commit',
    ]);
    const m = ms.map((x) => x.message);

    // Relations: schema, names, key flags, types; the enum's type message names it.
    const [other, items, otherAgain] = only(ms, 'relation');
    expect(otherAgain).toEqual(other);
    expect(other).toMatchObject({ schema: 'public', name: 'other', replicaIdentity: 'd' });
    expect(other.columns).toEqual([
      { key: true, name: 'id', typeOid: 23, typmod: -1 },
      { key: false, name: 'v', typeOid: 25, typmod: -1 },
    ]);
    expect(items.columns.map((c) => [c.name, c.key])).toEqual([['id', true], ['qty', false], ['note', false], ['big', false], ['m', false]]);
    const [mood] = only(ms, 'type');
    expect(mood).toMatchObject({ schema: 'public', name: 'mood' });
    expect(items.columns[4].typeOid).toBe(mood.typeOid);

    // Values are the server's text bytes; relation ids tie changes to relations.
    const inserts = only(ms, 'insert');
    expect(inserts[0]).toMatchObject({ relationId: other.relationId });
    expect(text(inserts[0].new)).toEqual(['1', 'after the snapshot']);
    expect(inserts[1].relationId).toBe(items.relationId);
    expect(text(inserts[1].new)).toEqual(['1', '5', 'first', bigValue, 'ok']);

    const [qty, key, inTxn] = only(ms, 'update');
    expect(qty.old).toBeUndefined();
    expect(text(qty.new)).toEqual(['1', '6', 'first', UNCHANGED, 'ok']);
    expect(qty.new[3]).toBe(UNCHANGED);
    expect(key.old?.kind).toBe('K');
    expect(text(key.old!.tuple)).toEqual(['1', null, null, null, null]);
    expect(text(key.new)).toEqual(['2', '6', 'first', UNCHANGED, 'ok']);
    expect(text(inTxn.new)).toEqual(['10', '10', null, null, null]);

    const [del, delInTxn] = only(ms, 'delete');
    expect(del).toMatchObject({ relationId: items.relationId, old: { kind: 'K' } });
    expect(text(del.old.tuple)).toEqual(['2', null, null, null, null]);
    expect(text(delInTxn.old.tuple)).toEqual(['11', null, null, null, null]);

    expect(only(ms, 'truncate')).toEqual([{ tag: 'truncate', relationIds: [other.relationId], cascade: false, restartIdentity: true }]);

    const messages = only(ms, 'message');
    expect(messages.map((x) => [x.transactional, x.prefix, x.content.toString()])).toEqual([
      [true, 'dbferry', 'hello'],
      [false, 'dbferry', 'not transactional'],
      [true, 'dbferry', 'inside'],
    ]);

    expect(text(inserts[2].new)).toEqual(['10', '10', 'n10', null, null]);
    expect(text(inserts[1001].new)).toEqual(['1009', '1009', 'n1009', null, null]);

    // Positions: non-decreasing through the stream; each commit ends after it starts, commits in
    // order; begin's final LSN is its commit's LSN; XLogData walStart of a commit is its end.
    // Type and relation frames carry 0/0: the walsender zeroes the position of every write but
    // the last of a decoding callback (they precede the change they describe).
    const schema = ms.filter((x) => x.message.tag === 'relation' || x.message.tag === 'type');
    expect(schema.map((x) => [x.walStart, x.walEnd])).toEqual(schema.map(() => [0n, 0n]));
    const positioned = ms.filter((x) => !schema.includes(x));
    for (let i = 1; i < positioned.length; i++) expect(positioned[i].walStart).toBeGreaterThanOrEqual(positioned[i - 1].walStart);
    expect(positioned.every((x) => x.walEnd === x.walStart)).toBe(true);
    const begins = only(ms, 'begin');
    const commits = only(ms, 'commit');
    expect(begins).toHaveLength(8);
    for (let i = 0; i < commits.length; i++) {
      expect(commits[i].endLsn).toBeGreaterThan(commits[i].commitLsn);
      expect(begins[i].finalLsn).toBe(commits[i].commitLsn);
      expect(begins[i].commitTime).toBe(commits[i].commitTime);
      if (i > 0) expect(commits[i].commitLsn).toBeGreaterThan(commits[i - 1].endLsn - 1n);
    }
    expect(commits[0].commitLsn).toBeGreaterThanOrEqual(holder.consistentPoint);
    const commitFrames = ms.filter((x) => x.message.tag === 'commit');
    expect(commitFrames.map((x) => x.walStart)).toEqual(commits.map((c) => c.endLsn));
    // Commit times are epoch microseconds: now-ish.
    const nowUs = BigInt(Date.now()) * 1000n;
    expect(nowUs - commits[7].commitTime).toBeLessThan(120_000_000n);
    expect(nowUs - commits[7].commitTime).toBeGreaterThanOrEqual(-5_000_000n);
    expect(stream.lastServerWalEnd).toBeGreaterThanOrEqual(commits[7].endLsn);
    expect(m.filter((x) => x.tag === 'origin')).toEqual([]);
  });

  it('moves the slot only as far as confirmed, and resumes after the confirmed transaction', async () => {
    const slot = newSlot();
    const start = await createSlot(ep, slot);
    await sql(`INSERT INTO other (v) VALUES ('one')`);
    await sql(`INSERT INTO other (v) VALUES ('two')`);

    const first = await open(slot, start);
    const ms = await collect(first, 1);
    const commit = only(ms, 'commit')[0];
    expect(text(only(ms, 'insert')[0].new)[1]).toBe('one');
    first.confirm(commit.endLsn);
    expect(first.confirmedLsn).toBe(commit.endLsn);
    first.confirm(commit.commitLsn); // never moves back
    expect(first.confirmedLsn).toBe(commit.endLsn);
    await first.close();

    const row = (await sql('SELECT confirmed_flush_lsn::text AS lsn, active FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0];
    expect(row.lsn).toBe(formatLsn(commit.endLsn));
    expect(parseLsn(row.lsn)).toBe(commit.endLsn);
    expect(row.active).toBe(false);

    // From the confirmed position, and from 0/0 (the slot's own position): 'two' comes first.
    for (const from of [commit.endLsn, 0n]) {
      const again = await open(slot, from);
      const next = await collect(again, 1);
      await again.close();
      expect(text(only(next, 'insert')[0].new)[1]).toBe('two');
    }
  });

  it('streams a transaction far larger than it buffers, with back-pressure, and closes mid-transaction promptly', async () => {
    const slot = newSlot();
    const start = await createSlot(ep, slot);
    // 600 rows of 100 kB that do not compress: 60 MB of values in one transaction.
    await sql(`INSERT INTO items (id, qty, big) SELECT g, g, (SELECT string_agg(md5(g::text || s::text || random()::text), '') FROM generate_series(1, 3200) s) FROM generate_series(100000, 100599) g`);
    const stream = await open(slot, start);
    const before = process.memoryUsage().arrayBuffers;
    let rows = 0;
    let held = Infinity;
    for await (const m of oneByOne(stream)) {
      if (m.message.tag !== 'insert') continue;
      expect((m.message.new[3] as Buffer).length).toBe(102_400);
      if (++rows === 10) {
        // A slow applier: the server must wait for us rather than us buffering its output.
        await new Promise((r) => setTimeout(r, 1000));
        held = process.memoryUsage().arrayBuffers - before;
      }
      if (rows === 300) break;
    }
    expect(held).toBeLessThan(16 * 1024 * 1024);
    // The server is mid-transaction with more to send: close must not wait on it.
    const t0 = Date.now();
    await stream.close();
    expect(Date.now() - t0).toBeLessThan(2_000);
    await eventually('the slot to be released', async () => ((await activePid(slot)) === null ? true : undefined));
  });

  it('hands keepalives over in stream order, so an idle applier can confirm the server position', async () => {
    const slot = newSlot();
    const start = await createSlot(ep, slot);
    const stream = await open(slot, start);
    // WAL without a change for this publication: the server skips the transaction (PostgreSQL 15
    // sends no empty begin/commit) and tells us its new position in a keepalive instead.
    await sql(`INSERT INTO unpublished VALUES (2)`);
    let walEnd = 0n;
    const timer = setTimeout(() => void stream.close(), 30_000);
    try {
      for await (const m of oneByOne(stream)) {
        // Nothing published changed: keepalives only.
        expect(m.message.tag).toBe('keepalive');
        expect(m.walStart).toBe(m.walEnd);
        if (m.walEnd > start) {
          walEnd = m.walEnd;
          break;
        }
      }
    } finally {
      clearTimeout(timer);
    }
    expect(walEnd).toBeGreaterThan(start);
    expect(stream.lastServerWalEnd).toBeGreaterThanOrEqual(walEnd);
    // Nothing pending (no change before the keepalive): the applier is caught up to walEnd.
    stream.confirm(walEnd);
    const confirmed = await eventually('the slot to follow the keepalive', async () => {
      const r = await sql('SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      return parseLsn(r.rows[0].lsn) >= walEnd ? parseLsn(r.rows[0].lsn) : undefined;
    });
    expect(confirmed).toBeGreaterThan(start);
    await stream.close();
  });

  it('ends the iteration with a Transient failure when the walsender is killed', async () => {
    const slot = newSlot();
    const start = await createSlot(ep, slot);
    const stream = await open(slot, start);
    const pid = await eventually('the walsender', async () => (await activePid(slot)) ?? undefined);
    const iteration = (async () => {
      for await (const m of stream) void m;
    })();
    const t0 = Date.now();
    await sql('SELECT pg_terminate_backend($1)', [pid]);
    const err = await iteration.then(
      () => new Error('the iteration ended without an error'),
      (e: unknown) => e,
    );
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe(FailureType.Transient);
    expect((err as ApplicationFailure).message).toContain(`source test ${db}`);
    // The stream closed itself; close() is still fine, and the slot is free again.
    await stream.close();
    await eventually('the slot to be released', async () => ((await activePid(slot)) === null ? true : undefined));
  });

  it('fails a stream whose server goes silent (Transient) while a quiet but live one stays up', async () => {
    const slot = newSlot();
    const start = await createSlot(ep, slot);
    const proxy = await blackHoleProxy(Number(new URL(url).port));
    try {
      const viaProxy = new URL(url);
      viaProxy.port = String(proxy.port);
      const stream = await openReplicationStream(
        { ...ep, url: viaProxy.toString() },
        { slot, publication: 'dbferry_pub', startLsn: start, statusIntervalMs: 100, receiveTimeoutMs: 1_000 },
      );
      streams.push(stream);
      let failed: unknown;
      const iteration = (async () => {
        for await (const m of stream) void m;
      })().catch((e: unknown) => (failed = e));
      // Longer than the receive timeout with nothing to stream: our pings keep it alive.
      await new Promise((r) => setTimeout(r, 2_500));
      expect(failed).toBeUndefined();
      proxy.freeze();
      const t0 = Date.now();
      await iteration;
      expect(Date.now() - t0).toBeLessThan(3_000);
      expect(failed).toBeInstanceOf(ApplicationFailure);
      expect(failed).toMatchObject({ type: FailureType.Transient, message: expect.stringContaining('nothing received') });
      const t1 = Date.now();
      await stream.close();
      expect(Date.now() - t1).toBeLessThan(5_000);
    } finally {
      proxy.stop();
    }
  });

  it('refuses a slot in use (Transient) and a missing slot, with typed failures', async () => {
    const slot = newSlot();
    const start = await createSlot(ep, slot);
    await open(slot, start);
    await expect(openReplicationStream(ep, { slot, publication: 'dbferry_pub', startLsn: start })).rejects.toMatchObject({
      type: FailureType.Transient,
      message: expect.stringContaining('in use'),
    });
    await expect(openReplicationStream(ep, { slot: 'no_such_slot', publication: 'dbferry_pub', startLsn: 0n })).rejects.toMatchObject({
      type: FailureType.SourceObjectMissing,
      message: expect.stringContaining('no_such_slot'),
    });
    await expect(openReplicationStream(ep, { slot: 'Bad-Name', publication: 'dbferry_pub', startLsn: 0n })).rejects.toMatchObject({
      type: FailureType.Unsupported,
    });
  });

  it('ends with SourceObjectMissing when the publication does not exist (the server says so at the first change)', async () => {
    const slot = newSlot();
    const start = await createSlot(ep, slot);
    const stream = await openReplicationStream(ep, { slot, publication: 'no_such_pub', startLsn: start });
    streams.push(stream);
    await sql(`INSERT INTO other (v) VALUES ('x')`);
    const iteration = (async () => {
      for await (const m of stream) void m;
    })();
    await expect(iteration).rejects.toMatchObject({
      type: FailureType.SourceObjectMissing,
      message: expect.stringContaining('no_such_pub'),
    });
    await stream.close();
    await eventually('the slot to be released', async () => ((await activePid(slot)) === null ? true : undefined));
  });

  it('drops a slot that a stream holds, and a missing slot without complaint', async () => {
    const slot = newSlot();
    const start = await createSlot(ep, slot);
    const stream = await open(slot, start);
    const iteration = (async () => {
      for await (const m of stream) void m;
    })();
    await withClient(url, (c) => dropSlot(c, slot));
    expect((await sql('SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0].n).toBe(0);
    await expect(iteration).rejects.toMatchObject({ type: FailureType.Transient });
    await withClient(url, (c) => dropSlot(c, slot));
  });
});

/** A TCP proxy to a server that can start dropping everything both ways, like a dead network. */
async function blackHoleProxy(targetPort: number): Promise<{ port: number; freeze(): void; stop(): void }> {
  let frozen = false;
  const sockets: Socket[] = [];
  const server = createServer((down) => {
    const up = netConnect(targetPort, '127.0.0.1');
    sockets.push(down, up);
    down.on('data', (d) => frozen || up.write(d));
    up.on('data', (d) => frozen || down.write(d));
    for (const [a, b] of [[down, up], [up, down]]) {
      a.on('error', () => undefined);
      a.on('close', () => b.destroy());
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('proxy has no port');
  return {
    port: address.port,
    freeze: () => (frozen = true),
    stop() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
