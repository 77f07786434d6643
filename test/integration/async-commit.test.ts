import { join } from 'node:path';
import { commitsWithoutWaiting } from '../../activities/apply/durable-commits';
import { startPostgresCluster, type PostgresCluster } from '../../local/postgres-cluster';
import { withClient } from '../support/databases';

jest.setTimeout(120_000);

/**
 * The CDC applier commits without waiting for the target's disk only where the target's own
 * flush position says a commit is safe: not when it replicates synchronously, where a standby it
 * fails over to may lack what its own disk has. There each commit waits, even where the server's
 * default (here `local`) would not.
 */
describe('when the CDC applier commits without waiting for the disk', () => {
  let target: PostgresCluster;

  beforeAll(async () => {
    target = await startPostgresCluster({ baseDir: join(__dirname, '..', '..', '.tmp', 'test-servers'), settings: { synchronous_commit: 'local' } });
  });
  afterAll(async () => {
    await target?.stop();
  });

  const modeAfter = (url: string) =>
    withClient(url, async (c) => ({ async: await commitsWithoutWaiting(c), setting: (await c.query<{ s: string }>('SELECT current_setting($1) AS s', ['synchronous_commit'])).rows[0]!.s }));

  it('on a target without synchronous standbys: asynchronous commits, made safe by its flush position', async () => {
    expect(await modeAfter(target.url())).toEqual({ async: true, setting: 'off' });
  });

  it('on a target with synchronous standbys: every commit waits (the source learns positions at commit), whatever its default', async () => {
    await withClient(target.url(), async (c) => {
      await c.query("ALTER SYSTEM SET synchronous_standby_names = 'replica_a'");
      await c.query('SELECT pg_reload_conf()');
    });
    // The reload reaches new sessions once the postmaster has signalled them; a fresh one each try.
    let seen: { async: boolean; setting: string } | undefined;
    for (let i = 0; i < 50 && seen?.async !== false; i++) {
      seen = await modeAfter(target.url());
      if (seen.async) await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen).toEqual({ async: false, setting: 'on' });
  });
});
