import { join } from 'node:path';
import { createConnection, type Connection } from 'mysql2/promise';
import { cdcFindings, readCdcSettings, type CdcSettings } from '../../activities/mysql/cdc-preflight';
import { startMariaDb, type MariaDbServer } from '../../local/mariadb-server';
import type { Finding } from '../../plan/migration-types';

jest.setTimeout(3 * 60_000);

/**
 * The binlog CDC preflight against a real MariaDB 10.11: what readCdcSettings reads from a
 * server set up for CDC raises nothing that blocks, and each setting changed on the live server
 * (one at a time, then put back) raises its own finding, naming the setting. The binary log
 * itself cannot be switched off at runtime: the unit test covers log_bin.
 */
describe('binlog CDC preflight (MariaDB)', () => {
  let maria: MariaDbServer;
  let admin: Connection;
  const ep = { description: 'source mysql/test' };

  /** The settings and findings as the migration user (or another one) sees them. */
  const check = async (user = 'cdc', opts: { expectedLoadHours?: number } = {}): Promise<{ settings: CdcSettings; findings: Finding[] }> => {
    const c = await createConnection({ host: '127.0.0.1', port: maria.port, user, password: 'pw' });
    try {
      const settings = await readCdcSettings(c);
      return { settings, findings: cdcFindings(ep, settings, opts) };
    } finally {
      await c.end();
    }
  };
  const blocking = (fs: Finding[]) => fs.filter((f) => f.severity === 'blocking');

  /** Sets a global variable for the duration of fn, then puts back the value it had. */
  const withGlobal = async <T>(name: string, value: string | number, fn: () => Promise<T>): Promise<T> => {
    const [[before]] = (await admin.query(`SELECT @@GLOBAL.${name} AS v`)) as unknown as [Array<{ v: string | number }>];
    await admin.query(`SET GLOBAL ${name} = ?`, [value]);
    try {
      return await fn();
    } finally {
      await admin.query(`SET GLOBAL ${name} = ?`, [before!.v]);
    }
  };

  beforeAll(async () => {
    maria = await startMariaDb({ baseDir: join(__dirname, '..', '..', '.tmp', 'test-servers') });
    admin = await createConnection({ uri: maria.url(), multipleStatements: true });
    await admin.query(`
      SET GLOBAL binlog_row_metadata = 'FULL';
      CREATE DATABASE shop;
      CREATE USER 'cdc'@'127.0.0.1' IDENTIFIED BY 'pw';
      GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'cdc'@'127.0.0.1';
      CREATE USER 'noslave'@'127.0.0.1' IDENTIFIED BY 'pw';
      GRANT SELECT, BINLOG MONITOR ON *.* TO 'noslave'@'127.0.0.1';
      GRANT ALL PRIVILEGES ON shop.* TO 'noslave'@'127.0.0.1';
      CREATE ROLE cdc_role;
      GRANT REPLICATION SLAVE ON *.* TO cdc_role;
      CREATE USER 'roled'@'127.0.0.1' IDENTIFIED BY 'pw';
      GRANT SELECT, BINLOG MONITOR ON *.* TO 'roled'@'127.0.0.1';
      GRANT cdc_role TO 'roled'@'127.0.0.1';
      SET DEFAULT ROLE cdc_role FOR 'roled'@'127.0.0.1';
      CREATE USER 'inactive'@'127.0.0.1' IDENTIFIED BY 'pw';
      GRANT SELECT, BINLOG MONITOR ON *.* TO 'inactive'@'127.0.0.1';
      GRANT cdc_role TO 'inactive'@'127.0.0.1';
    `);
  });

  afterAll(async () => {
    await admin?.end();
    await maria?.stop();
  });

  it('reads the server as it is, and finds nothing in the way on a server set up for CDC', async () => {
    const { settings, findings } = await check();
    expect(settings.version).toMatch(/^10\.11\..*MariaDB/);
    expect(settings.variables).toMatchObject({
      log_bin: 'ON',
      binlog_format: 'ROW',
      binlog_row_image: 'FULL',
      binlog_row_metadata: 'FULL',
      server_id: '1',
      binlog_expire_logs_seconds: '0',
      log_bin_compress: 'OFF',
      binlog_checksum: 'CRC32',
    });
    // MySQL-only variables are simply absent.
    expect(settings.variables.binlog_transaction_compression).toBeUndefined();
    expect(settings.variables.gtid_mode).toBeUndefined();
    expect(settings.rds).toBeUndefined();
    expect(settings.grants?.join('\n')).toMatch(/GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON \*\.\* TO `cdc`@`127\.0\.0\.1`/);
    expect(blocking(findings)).toEqual([]);
    expect(findings.filter((f) => f.severity === 'warning')).toEqual([]);
    expect(findings.find((f) => f.code === 'binlog-retention-info')?.message).toMatch(/not purged by age/);
  });

  it.each([
    ['binlog_format', 'STATEMENT', 'binlog-format'],
    ['binlog_format', 'MIXED', 'binlog-format'],
    ['binlog_row_image', 'MINIMAL', 'binlog-row-image'],
    ['binlog_row_image', 'NOBLOB', 'binlog-row-image'],
    ['binlog_row_metadata', 'MINIMAL', 'binlog-row-metadata'],
    ['binlog_row_metadata', 'NO_LOG', 'binlog-row-metadata'],
  ])('blocks on %s = %s (%s), naming the setting', async (name, value, code) => {
    const found = await withGlobal(name, value, async () => blocking((await check()).findings));
    expect(found).toEqual([expect.objectContaining({ severity: 'blocking', code, message: expect.stringContaining(`${name} is ${value}`) })]);
    expect(found[0]!.message).toContain(ep.description);
    // Put back, nothing blocks.
    expect(blocking((await check()).findings)).toEqual([]);
  });

  it('warns when binary logs are purged before a load and its margin are over (expire_logs_days)', async () => {
    const r = await withGlobal('expire_logs_days', 0.5, () => check());
    // MariaDB keeps binlog_expire_logs_seconds in step with expire_logs_days.
    expect(r.settings.variables.binlog_expire_logs_seconds).toBe('43200');
    const warning = r.findings.filter((f) => f.code === 'binlog-retention');
    expect(warning).toEqual([expect.objectContaining({ severity: 'warning', message: expect.stringContaining('expire_logs_days = 0.5') })]);
    expect(warning[0]!.message).toMatch(/purged before CDC reads it/);
    expect(r.findings.find((f) => f.code === 'binlog-retention-info')?.message).toMatch(/kept 12 h/);
    expect(blocking(r.findings)).toEqual([]);
    // A 4-hour load fits in 12 hours.
    const short = await withGlobal('expire_logs_days', 0.5, () => check('cdc', { expectedLoadHours: 4 }));
    expect(short.findings.filter((f) => f.code === 'binlog-retention')).toEqual([]);
  });

  it("only informs about MariaDB's log_bin_compress: the reader decompresses those events", async () => {
    const { findings } = await withGlobal('log_bin_compress', 'ON', () => check());
    expect(blocking(findings)).toEqual([]);
    expect(findings.find((f) => f.code === 'mariadb-binlog-compression')).toMatchObject({ severity: 'info', message: expect.stringContaining('log_bin_compress is ON') });
  });

  it('blocks a user without REPLICATION SLAVE on *.* (ALL PRIVILEGES on a database does not count)', async () => {
    const found = blocking((await check('noslave')).findings);
    expect(found).toEqual([expect.objectContaining({ code: 'replication-grant', message: expect.stringContaining('REPLICATION SLAVE') })]);
    expect(found[0]!.message).toContain('GRANT REPLICATION SLAVE ON *.* TO `noslave`@`127.0.0.1`');
  });

  it("counts the privileges of the user's default role (MariaDB shows them), and not those of a role it does not start with", async () => {
    const roled = await check('roled');
    expect(roled.settings.rolesExpanded).toBe(true);
    expect(roled.settings.grants?.join('\n')).toContain('GRANT REPLICATION SLAVE ON *.* TO `cdc_role`');
    expect(roled.findings.filter((f) => f.code.endsWith('grant'))).toEqual([]);
    // The binlog connection would not have an inactive role either.
    const inactive = blocking((await check('inactive')).findings);
    expect(inactive).toEqual([expect.objectContaining({ code: 'replication-grant', message: expect.stringContaining('REPLICATION SLAVE') })]);
  });
});
