import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readProgress } from '../../activities/apply/progress';
import type { PgEndpoint } from '../../activities/pg/connection';
import { lsnOf, pgPosition } from '../../activities/postgres/position';
import { ensureBookkeeping } from '../../activities/target/bookkeeping';
import { createDatabase, dropDatabase, uniqueName, withClient } from '../support/databases';

/**
 * A migration started by dbferry 0.1 and paused (or still in CDC) when the workers are upgraded:
 * its `_dbferry` bookkeeping on the target has pg_lsn columns. The next step that touches it
 * must convert them to engine positions in place, keep every value, and let the applier's
 * conditional progress update (WHERE commit_position = <what it read>) find its row, so `dbferry
 * retry` resumes exactly where the old version stopped.
 */
describe('bookkeeping of an earlier version is upgraded in place', () => {
  const db = uniqueName('bk_upgrade');
  let url: string;
  const tgt = { description: 'target postgres/test' } as PgEndpoint;

  beforeAll(async () => {
    url = await createDatabase('target', db);
    await withClient(url, async (c) => {
      await c.query(readFileSync(join(__dirname, '..', 'fixtures', 'bookkeeping-v0.1.sql'), 'utf8'));
      await c.query(`INSERT INTO _dbferry.snapshots (run_id, generation, snapshot, lsn, slot) VALUES ('run1', 1, '00000003-1', '16/B374D848', 'dbferry_shop'), ('run1', 2, '00000004-1', '16/B3750000', NULL)`);
      await c.query(
        `INSERT INTO _dbferry.cdc_progress (run_id, slot, publication, commit_lsn, end_lsn, transactions, changes, marker_lsn)
         VALUES ('run1', 'dbferry_shop', 'dbferry_shop', '16/B3760000', '16/B3760038', 42, 4200, NULL)`,
      );
      await c.query(`INSERT INTO _dbferry.cdc_stats (run_id, table_key, inserts, updates, deletes, truncates) VALUES ('run1', 'public.accounts', 1, 2, 3, 0)`);
    });
  });

  afterAll(() => dropDatabase('target', db));

  test('positions keep their values as postgres: text; the applier finds its row; a second run changes nothing', async () => {
    await withClient(url, async (c) => {
      await ensureBookkeeping(c);
      await ensureBookkeeping(c);
      const progress = await readProgress(c, 'run1', tgt);
      expect(progress.position).toEqual({ commitPosition: 'postgres:16/B3760000', endPosition: 'postgres:16/B3760038' });
      expect(lsnOf(progress.position.endPosition)).toBe(0x16b3760038n);
      expect(progress).toMatchObject({ markerPosition: null, transactions: 42, changes: 4200 });
      expect(progress.tables).toEqual([{ table: 'public.accounts', inserts: 1, updates: 2, deletes: 3, truncates: 0 }]);

      const snaps = await c.query('SELECT generation, position, slot FROM _dbferry.snapshots ORDER BY generation');
      expect(snaps.rows).toEqual([
        { generation: 1, position: 'postgres:16/B374D848', slot: 'dbferry_shop' },
        { generation: 2, position: 'postgres:16/B3750000', slot: null },
      ]);
      const held = await c.query('SELECT source_objects FROM _dbferry.cdc_progress');
      expect(held.rows[0].source_objects).toBe('replication slot dbferry_shop, publication dbferry_shop');

      // What the applier does with the next transaction: conditional on the position it read,
      // which it writes in the same canonical form.
      const next = pgPosition(0x16b3770000n);
      const r = await c.query(`UPDATE _dbferry.cdc_progress SET commit_position = $3, end_position = $3 WHERE run_id = $1 AND commit_position = $2`, [
        'run1',
        pgPosition(lsnOf(progress.position.commitPosition)),
        next,
      ]);
      expect(r.rowCount).toBe(1);
    });
  });
});
