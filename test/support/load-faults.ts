import { waitFor } from '../../local/processes';
import { withClient } from './databases';

/**
 * A source for faults injected during a full load: `big` is copied first (largest first) and
 * long enough, with one lane, for a DDL on `small` to land after the load's snapshot and
 * before `small` is copied.
 */
export async function createBigAndSmall(url: string, bigRows: number): Promise<void> {
  await withClient(url, (c) =>
    c.query(`
      CREATE TABLE big (id bigint PRIMARY KEY, pad text);
      INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, ${bigRows}) g;
      CREATE TABLE small (id int PRIMARY KEY, v text);
      INSERT INTO small SELECT g, 'v' || g FROM generate_series(1, 5000) g;
      ANALYZE;`),
  );
}

/** Returns once the load's snapshot is recorded on the target: changes after it are not in it. */
export async function untilLoadSnapshot(targetUrl: string): Promise<void> {
  await waitFor('the load snapshot', 60_000, async () => {
    const r = await withClient(targetUrl, (c) => c.query<{ n: number }>('SELECT count(*)::int AS n FROM _dbferry.snapshots'));
    return r.rows[0]!.n > 0 ? true : undefined;
  });
}
