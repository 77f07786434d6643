import { ApplicationFailure } from '@temporalio/common';
import { mysqlFailure, resolveMysqlEndpoint } from '../../activities/mysql/connection';
import { parsePlan } from '../../plan';

const plan = (url: string) => {
  const p = parsePlan({ name: 'm', mode: 'full-load', source: { engine: 'mysql', url }, target: { engine: 'postgres', url: 'env:T' } });
  if (!p.ok) throw new Error(JSON.stringify(p.issues));
  return p.plan;
};

describe('a MySQL source URL, resolved on the worker', () => {
  afterEach(() => delete process.env.DBFERRY_UNIT_MY);

  it('is described without its password, and the database becomes the schema', async () => {
    process.env.DBFERRY_UNIT_MY = 'mysql://app:s3cr%40t@db.example:3307/shop';
    const ep = await resolveMysqlEndpoint(plan('env:DBFERRY_UNIT_MY'));
    expect(ep).toMatchObject({ description: 'source mysql/db.example:3307/shop', database: 'shop', secrets: ['s3cr@t', 's3cr%40t'] });
  });

  it('names the reference, never the value, when it is not a MySQL URL', async () => {
    process.env.DBFERRY_UNIT_MY = 'postgres://app:topsecret@db/shop';
    const err = await resolveMysqlEndpoint(plan('env:DBFERRY_UNIT_MY')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).message).toBe(
      'source.url: the value env:DBFERRY_UNIT_MY resolves to is not a MySQL connection URL (expected mysql://user@host:port/database; it has another scheme)',
    );
    process.env.DBFERRY_UNIT_MY = 'mysql://app:topsecret@db:3306/';
    const noDb = (await resolveMysqlEndpoint(plan('env:DBFERRY_UNIT_MY')).catch((e: unknown) => e)) as ApplicationFailure;
    expect(noDb.message).toMatch(/names no database/);
    expect(noDb.message).not.toContain('topsecret');
  });

  it('turns driver errors into typed failures naming the source, scrubbed', async () => {
    process.env.DBFERRY_UNIT_MY = 'mysql://app:topsecret@db:3306/shop';
    const ep = await resolveMysqlEndpoint(plan('env:DBFERRY_UNIT_MY'));
    const denied = mysqlFailure(Object.assign(new Error("Access denied for user 'app'@'10.0.0.1' (using password: YES) topsecret"), { code: 'ER_ACCESS_DENIED_ERROR' }), ep, { doing: 'connecting' });
    expect(denied).toMatchObject({ type: 'AuthenticationFailed', nonRetryable: true });
    expect(denied.message).toBe("source mysql/db:3306/shop: Access denied for user 'app'@'10.0.0.1' (using password: YES) *** while connecting");
    expect(mysqlFailure(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), ep, { doing: 'x' })).toMatchObject({ type: 'Transient', nonRetryable: false });
    expect(mysqlFailure(Object.assign(new Error("SELECT command denied to user 'app' for table 'orders'"), { code: 'ER_TABLEACCESS_DENIED_ERROR' }), ep, { table: 'shop.orders', doing: 'x' })).toMatchObject({
      type: 'PermissionDenied',
      message: expect.stringContaining('source mysql/db:3306/shop, table shop.orders:'),
    });
  });
});

describe('what the MySQL server says about the migration', () => {
  const ep = { url: '', description: 'source mysql/db:3306/shop', database: 'shop', secrets: [] };
  it('names zero dates the server accepts, old servers and untested MySQL', async () => {
    const { serverFindings } = await import('../../activities/mysql/mysql-engine');
    expect(serverFindings(ep, '10.11.19-MariaDB-0+deb12u1-log', 'STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE')).toEqual([]);
    expect(serverFindings(ep, '10.11.19-MariaDB', 'STRICT_TRANS_TABLES').map((f) => f.code)).toEqual(['zero-dates']);
    expect(serverFindings(ep, '10.1.48-MariaDB', 'NO_ZERO_IN_DATE,NO_ZERO_DATE').map((f) => f.code)).toEqual(['old-server']);
    expect(serverFindings(ep, '8.0.36', 'NO_ZERO_IN_DATE,NO_ZERO_DATE').map((f) => f.code)).toEqual(['untested-server']);
    expect(serverFindings(ep, '5.6.51-log', '').map((f) => f.code)).toEqual(['old-server', 'untested-server', 'zero-dates']);
  });

  it('warns when the user lacks RELOAD (no read point shared by every table)', async () => {
    const { grantFindings } = await import('../../activities/mysql/mysql-engine');
    expect(grantFindings(ep, ["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"])).toEqual([]);
    expect(grantFindings(ep, ['GRANT SELECT, RELOAD, REPLICATION CLIENT ON *.* TO `dbferry`@`%`'])).toEqual([]);
    expect(grantFindings(ep, ['GRANT USAGE ON *.* TO `reader`@`%`', 'GRANT SELECT ON `shop`.* TO `reader`@`%`']).map((f) => f.code)).toEqual(['no-reload']);
    // ALL PRIVILEGES on one database does not include RELOAD (a global privilege).
    expect(grantFindings(ep, ['GRANT ALL PRIVILEGES ON `shop`.* TO `app`@`%`']).map((f) => f.code)).toEqual(['no-reload']);
    // A database named reload is not the privilege.
    expect(grantFindings(ep, ['GRANT SELECT ON `reload`.* TO `app`@`%`']).map((f) => f.code)).toEqual(['no-reload']);
    expect(grantFindings(ep, ['GRANT RELOAD ON *.* TO `dbferry`@`%`'])).toEqual([]);
  });
});
