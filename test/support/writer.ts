import { Client } from 'pg';

/**
 * An application writing to the source while a migration runs: random transactions of inserts,
 * updates (of small columns next to large TOASTed values, and of the large values themselves),
 * deletes (cascading to a child table), multi-row updates and now and then a TRUNCATE. It
 * reconnects when the server goes away (a restart) and keeps going until stopped.
 */
export interface Writer {
  /** Transactions committed so far. */
  committed(): number;
  /** Write to column `tier` of accounts too (after the test added it on the source). */
  useTier(): void;
  stop(): Promise<void>;
}

export function startWriter(url: string, opts: { firstNewId: number; accounts: number; docs: number }): Writer {
  let stopped = false;
  let committed = 0;
  let tier = false;
  let nextId = opts.firstNewId;
  const rnd = (n: number) => 1 + Math.floor(Math.random() * n);

  const one = async (c: Client, i: number) => {
    await c.query('BEGIN');
    try {
      const kind = i % 10;
      if (kind === 0) {
        await c.query('INSERT INTO accounts (id, balance, note) VALUES ($1, $2, $3)', [nextId++, rnd(1000), `new ${i}`]);
      } else if (kind <= 3) {
        await c.query(`UPDATE accounts SET balance = balance + $2${tier ? ", tier = 'gold'" : ''} WHERE id = $1`, [rnd(opts.accounts), rnd(50)]);
        await c.query('INSERT INTO events (account_id, kind) SELECT id, $2 FROM accounts WHERE id = $1', [rnd(opts.accounts), `k${i % 7}`]);
      } else if (kind === 4) {
        // Cascades to the account's events: pgoutput carries the cascaded deletes.
        await c.query('DELETE FROM accounts WHERE id = $1', [rnd(opts.accounts)]);
      } else if (kind <= 6) {
        // Only the small column: the TOASTed body arrives as "unchanged" and must stay.
        await c.query('UPDATE docs SET title = $2 WHERE id = $1', [rnd(opts.docs), `title ${i}`]);
      } else if (kind === 7 && i % 50 === 7) {
        await c.query(
          "UPDATE docs SET body = (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 3000)) WHERE id = $1",
          [rnd(opts.docs)],
        );
      } else if (kind === 8) {
        // A multi-row update, small enough that the applier keeps up on a loaded 2-core CI
        // machine (with a test beside this one, 300 rows a time outran it: never caught up).
        const from = rnd(opts.accounts);
        await c.query('UPDATE accounts SET note = $3 WHERE id BETWEEN $1 AND $2', [from, from + 60, `bulk ${i}`]);
      } else if (i % 100 === 9) {
        await c.query('TRUNCATE "Scratch Pad"');
        await c.query(`INSERT INTO "Scratch Pad" (k, v) SELECT g, 'after truncate ' || $1 FROM generate_series(1, 50) g`, [i]);
      } else {
        await c.query(`INSERT INTO "Scratch Pad" (k, v) VALUES ($1, 'w') ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v || '+'`, [rnd(200)]);
      }
      await c.query('COMMIT');
      committed++;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  };

  const loop = (async () => {
    let i = 0;
    while (!stopped) {
      let c: Client | undefined;
      try {
        c = new Client({ connectionString: url });
        c.on('error', () => undefined);
        await c.connect();
        while (!stopped) {
          try {
            await one(c, i++);
          } catch (err) {
            // A foreign key meeting a concurrently deleted account is the application's own business.
            if ((err as { code?: string }).code !== '23503') throw err;
          }
          // An application's pace, not a load test: a few hundred transactions a second.
          if (i % 5 === 0) await new Promise((r) => setTimeout(r, 20));
        }
      } catch {
        // The server went away (a restart): try again shortly.
        await new Promise((r) => setTimeout(r, 200));
      } finally {
        await c?.end().catch(() => undefined);
      }
    }
  })();

  return {
    committed: () => committed,
    useTier: () => (tier = true),
    async stop() {
      stopped = true;
      await loop;
    },
  };
}
