import { cdcFindings, cdcServerId, globalPrivileges, type CdcSettings } from '../../activities/mysql/cdc-preflight';
import type { Finding } from '../../plan/migration-types';

const ep = { description: 'source mysql/db.example:3306/shop' };

/** MariaDB 10.11 set up as CDC needs it (what the SHOW GLOBAL VARIABLES of local/mariadb-server.ts says). */
const mariadb: CdcSettings = {
  version: '10.11.6-MariaDB-log',
  variables: {
    log_bin: 'ON',
    binlog_format: 'ROW',
    binlog_row_image: 'FULL',
    binlog_row_metadata: 'FULL',
    server_id: '1',
    binlog_expire_logs_seconds: '0',
    expire_logs_days: '0.000000',
    log_bin_compress: 'OFF',
    binlog_checksum: 'CRC32',
    basedir: '/usr/',
  },
  grants: ["GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `dbferry`@`%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122'"],
  // MariaDB's SHOW GRANTS holds the privileges of the current role.
  rolesExpanded: true,
};

/** MySQL 8.0 with its defaults and binlog_row_metadata = FULL. */
const mysql8: CdcSettings = {
  version: '8.0.36',
  variables: {
    log_bin: 'ON',
    binlog_format: 'ROW',
    binlog_row_image: 'FULL',
    binlog_row_metadata: 'FULL',
    server_id: '1',
    binlog_expire_logs_seconds: '2592000',
    expire_logs_days: '0',
    binlog_expire_logs_auto_purge: 'ON',
    binlog_transaction_compression: 'OFF',
    binlog_row_value_options: '',
    gtid_mode: 'OFF',
    binlog_checksum: 'CRC32',
    basedir: '/usr/',
    mandatory_roles: '',
  },
  grants: [
    'GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `dbferry`@`%`',
    'GRANT BACKUP_ADMIN,FLUSH_OPTIMIZER_COSTS ON *.* TO `dbferry`@`%`',
  ],
  // CURRENT_ROLE() is NONE.
  rolesExpanded: true,
};

const withVars = (s: CdcSettings, vars: CdcSettings['variables']): CdcSettings => ({ ...s, variables: { ...s.variables, ...vars } });
const without = (s: CdcSettings, ...names: Array<keyof CdcSettings['variables']>): CdcSettings => {
  const variables = { ...s.variables };
  for (const n of names) delete variables[n];
  return { ...s, variables };
};
const problems = (fs: Finding[]) => fs.filter((f) => f.severity !== 'info');
const byCode = (fs: Finding[], code: string) => fs.filter((f) => f.code === code);

describe('binlog CDC preflight (pure, over what the server said)', () => {
  it('finds nothing in the way on a well-configured MariaDB or MySQL, and states the retention', () => {
    for (const s of [mariadb, mysql8]) {
      const fs = cdcFindings(ep, s, {});
      expect(problems(fs)).toEqual([]);
      expect(byCode(fs, 'binlog-retention-info')).toHaveLength(1);
      for (const f of fs) expect(f.message.startsWith(`${ep.description}: `)).toBe(true);
    }
    expect(byCode(cdcFindings(ep, mysql8, {}), 'binlog-retention-info')[0]!.message).toBe(
      `${ep.description}: binary logs are kept 30 days (binlog_expire_logs_seconds = 2592000, expire_logs_days = 0)`,
    );
    expect(byCode(cdcFindings(ep, mariadb, {}), 'binlog-retention-info')[0]!.message).toBe(
      `${ep.description}: binary logs are not purged by age (binlog_expire_logs_seconds = 0, expire_logs_days = 0.000000)`,
    );
  });

  // One wrong setting at a time: the finding, its severity, and the words its message must carry.
  const cases: Array<{ name: string; base: CdcSettings; vars: CdcSettings['variables']; code: string; severity: Finding['severity']; says: RegExp[] }> = [
    { name: 'binary log off (MySQL)', base: mysql8, vars: { log_bin: 'OFF' }, code: 'binlog-off', severity: 'blocking', says: [/log_bin = OFF/, /my\.cnf/, /restart/] },
    { name: 'binary log off (@@GLOBAL fallback: 0)', base: mariadb, vars: { log_bin: '0' }, code: 'binlog-off', severity: 'blocking', says: [/log_bin/] },
    { name: 'STATEMENT format', base: mariadb, vars: { binlog_format: 'STATEMENT' }, code: 'binlog-format', severity: 'blocking', says: [/binlog_format is STATEMENT/, /SET GLOBAL binlog_format = ROW/, /my\.cnf/, /reconnect/] },
    { name: 'MIXED format (MySQL 8: SET PERSIST)', base: mysql8, vars: { binlog_format: 'MIXED' }, code: 'binlog-format', severity: 'blocking', says: [/binlog_format is MIXED/, /SET PERSIST binlog_format = ROW/] },
    { name: 'MINIMAL row image', base: mysql8, vars: { binlog_row_image: 'MINIMAL' }, code: 'binlog-row-image', severity: 'blocking', says: [/binlog_row_image is MINIMAL/, /needs FULL/, /SET PERSIST binlog_row_image = FULL/] },
    { name: 'NOBLOB row image', base: mariadb, vars: { binlog_row_image: 'NOBLOB' }, code: 'binlog-row-image', severity: 'blocking', says: [/binlog_row_image is NOBLOB/] },
    { name: "MariaDB 11.4's FULL_NODUP row image", base: mariadb, vars: { binlog_row_image: 'FULL_NODUP' }, code: 'binlog-row-image', severity: 'blocking', says: [/FULL_NODUP/] },
    { name: 'MySQL MINIMAL row metadata', base: mysql8, vars: { binlog_row_metadata: 'MINIMAL' }, code: 'binlog-row-metadata', severity: 'blocking', says: [/binlog_row_metadata is MINIMAL/, /ALTER TABLE/, /SET PERSIST binlog_row_metadata = FULL/] },
    { name: "MariaDB's default NO_LOG row metadata", base: mariadb, vars: { binlog_row_metadata: 'NO_LOG' }, code: 'binlog-row-metadata', severity: 'blocking', says: [/binlog_row_metadata is NO_LOG/, /SET GLOBAL binlog_row_metadata = FULL/] },
    { name: 'server_id 0', base: mysql8, vars: { server_id: '0' }, code: 'server-id', severity: 'blocking', says: [/server_id is 0/, /replica connections/] },
    { name: 'transaction compression', base: mysql8, vars: { binlog_transaction_compression: 'ON' }, code: 'binlog-compression', severity: 'blocking', says: [/binlog_transaction_compression is ON/, /SET PERSIST binlog_transaction_compression = OFF/] },
    { name: 'transaction compression (@@GLOBAL fallback: 1)', base: mysql8, vars: { binlog_transaction_compression: '1' }, code: 'binlog-compression', severity: 'blocking', says: [/binlog_transaction_compression/] },
    { name: 'partial JSON', base: mysql8, vars: { binlog_row_value_options: 'PARTIAL_JSON' }, code: 'partial-json', severity: 'blocking', says: [/binlog_row_value_options is PARTIAL_JSON/, /SET PERSIST binlog_row_value_options = ''/] },
    // zongji 0.9.0 inflates MariaDB's compressed events (the integration test reads them): no obstacle.
    { name: "MariaDB's log_bin_compress", base: mariadb, vars: { log_bin_compress: 'ON' }, code: 'mariadb-binlog-compression', severity: 'info', says: [/log_bin_compress is ON/] },
    { name: 'a binlog size limit (MariaDB 11.4)', base: mariadb, vars: { max_binlog_total_size: '1073741824' }, code: 'binlog-size-limit', severity: 'warning', says: [/max_binlog_total_size is 1073741824/] },
  ];

  it.each(cases)('$name: $code ($severity), naming the setting', ({ base, vars, code, severity, says }) => {
    expect(byCode(cdcFindings(ep, base, {}), code)).toEqual([]);
    const found = byCode(cdcFindings(ep, withVars(base, vars), {}), code);
    expect(found).toHaveLength(1);
    expect(found[0]!.severity).toBe(severity);
    for (const re of says) expect(found[0]!.message).toMatch(re);
    // Only that finding changed.
    const others = (fs: Finding[]) => problems(fs).filter((f) => f.code !== code);
    expect(others(cdcFindings(ep, withVars(base, vars), {}))).toEqual(others(cdcFindings(ep, base, {})));
  });

  it('on Amazon RDS, says to change the parameter group, not SET GLOBAL', () => {
    const rds: CdcSettings = { ...withVars(mysql8, { binlog_format: 'MIXED', basedir: '/rdsdbbin/mysql-8.0.36.R2/' }), rds: { binlogRetentionHours: 168 } };
    const [f] = byCode(cdcFindings(ep, rds, {}), 'binlog-format');
    expect(f!.message).toMatch(/DB parameter group/);
    expect(f!.message).not.toMatch(/SET (GLOBAL|PERSIST)/);
    expect(byCode(cdcFindings(ep, withVars(rds, { log_bin: 'OFF' }), {}), 'binlog-off')[0]!.message).toMatch(/automated backups/);
  });

  it('reads a missing binlog_row_metadata (MySQL 5.7, MariaDB before 10.5) as a warning, a missing row image or format as rows logged whole', () => {
    const mysql57 = without({ ...mysql8, version: '5.7.44-log' }, 'binlog_row_metadata', 'binlog_expire_logs_seconds', 'binlog_transaction_compression', 'binlog_row_value_options', 'binlog_expire_logs_auto_purge', 'mandatory_roles');
    const meta = byCode(cdcFindings(ep, mysql57, {}), 'binlog-row-metadata');
    expect(meta).toHaveLength(1);
    expect(meta[0]).toMatchObject({ severity: 'warning', message: expect.stringMatching(/\(5\.7\.44-log\) has no binlog_row_metadata/) });
    const mariadb104 = without({ ...mariadb, version: '10.4.32-MariaDB' }, 'binlog_row_metadata', 'binlog_expire_logs_seconds');
    expect(byCode(cdcFindings(ep, mariadb104, {}), 'binlog-row-metadata')[0]!.severity).toBe('warning');
    // A MySQL that dropped the deprecated binlog_format logs rows only.
    expect(problems(cdcFindings(ep, without(mysql8, 'binlog_format', 'binlog_row_image'), {}))).toEqual([]);
    expect(byCode(cdcFindings(ep, without(mysql8, 'log_bin'), {}), 'binlog-off')[0]!.severity).toBe('warning');
  });

  describe('retention', () => {
    const retention = (s: CdcSettings, expectedLoadHours?: number) => {
      const fs = cdcFindings(ep, s, expectedLoadHours === undefined ? {} : { expectedLoadHours });
      return { info: byCode(fs, 'binlog-retention-info'), warning: byCode(fs, 'binlog-retention') };
    };

    it('warns when MySQL purges binary logs before a day-long load and its margin are over', () => {
      const oneDay = withVars(mysql8, { binlog_expire_logs_seconds: '86400' });
      const r = retention(oneDay);
      expect(r.info[0]!.message).toMatch(/kept 24 h \(binlog_expire_logs_seconds = 86400/);
      expect(r.warning).toHaveLength(1);
      expect(r.warning[0]!.severity).toBe('warning');
      expect(r.warning[0]!.message).toMatch(/binlog_expire_logs_seconds = 86400/);
      expect(r.warning[0]!.message).toMatch(/purged before CDC reads it/);
      expect(r.warning[0]!.message).toMatch(/reload/);
      expect(r.warning[0]!.message).toMatch(/SET PERSIST binlog_expire_logs_seconds = 172800/);
      // A shorter load fits.
      expect(retention(oneDay, 6).warning).toEqual([]);
      // MySQL's default 30 days cover a 10-day load, not a 25-day one.
      expect(retention(mysql8, 240).warning).toEqual([]);
      expect(retention(mysql8, 600).warning).toHaveLength(1);
    });

    it('reads MySQL 8.0 expire_logs_days when binlog_expire_logs_seconds is 0, and nothing when auto purge is off', () => {
      const days = withVars(mysql8, { binlog_expire_logs_seconds: '0', expire_logs_days: '1' });
      expect(retention(days).warning[0]!.message).toMatch(/expire_logs_days = 1/);
      const noPurge = withVars(mysql8, { binlog_expire_logs_seconds: '3600', binlog_expire_logs_auto_purge: 'OFF' });
      expect(retention(noPurge)).toEqual({ info: [expect.objectContaining({ message: expect.stringMatching(/not purged by age \(binlog_expire_logs_auto_purge = OFF\)/) })], warning: [] });
    });

    it("reads MariaDB's fractional expire_logs_days (kept in step with binlog_expire_logs_seconds on 10.6+)", () => {
      const half = withVars(mariadb, { expire_logs_days: '0.500000', binlog_expire_logs_seconds: '43200' });
      const r = retention(half);
      expect(r.info[0]!.message).toMatch(/kept 12 h/);
      expect(r.warning[0]!.message).toMatch(/expire_logs_days = 0\.500000/);
      expect(r.warning[0]!.message).toMatch(/SET GLOBAL binlog_expire_logs_seconds = 172800/);
      // MariaDB before 10.6: whole days only, and only that variable.
      const old = without(withVars({ ...mariadb, version: '10.5.27-MariaDB' }, { expire_logs_days: '1' }), 'binlog_expire_logs_seconds');
      expect(retention(old).warning[0]!.message).toMatch(/SET GLOBAL expire_logs_days = 2/);
      expect(retention(withVars(mariadb, { expire_logs_days: '7.000000', binlog_expire_logs_seconds: '604800' })).warning).toEqual([]);
    });

    it("uses RDS's binlog retention hours, NULL meaning binary logs are not kept", () => {
      const rds = (hours: number | null | undefined): CdcSettings => ({
        ...withVars(mysql8, { basedir: '/rdsdbbin/mysql-8.0.36.R2/' }),
        rds: hours === undefined ? {} : { binlogRetentionHours: hours },
      });
      const none = retention(rds(null));
      expect(none.info[0]!.message).toMatch(/kept only briefly \(binlog retention hours = NULL/);
      expect(none.warning[0]!.message).toMatch(/CALL mysql\.rds_set_configuration\('binlog retention hours', 48\)/);
      expect(retention(rds(168)).warning).toEqual([]);
      expect(retention(rds(24)).warning).toHaveLength(1);
      const unknown = retention(rds(undefined));
      expect(unknown.info).toEqual([]);
      expect(unknown.warning[0]!.message).toMatch(/could not be read/);
    });
  });

  describe('grants', () => {
    const grantCodes = (s: CdcSettings) =>
      cdcFindings(ep, s, {})
        .filter((f) => f.code.endsWith('grant'))
        .map((f) => `${f.code}:${f.severity}`)
        .sort();
    const granted = (s: CdcSettings, grants: string[], more: Partial<CdcSettings> = {}): CdcSettings => ({ ...s, grants, ...more });

    it('reads global privileges by name, within ALL PRIVILEGES, and not on one database', () => {
      expect(globalPrivileges(['GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `u`@`%`'])).toEqual(new Set(['REPLICATION SLAVE', 'REPLICATION CLIENT']));
      expect(globalPrivileges(['GRANT ALL ON *.* TO `u`@`%`']).has('ALL PRIVILEGES')).toBe(true);
      expect(globalPrivileges(['GRANT REPLICATION SLAVE ON `shop`.* TO `u`@`%`', 'GRANT SELECT ON `shop`.`t` TO PUBLIC']).size).toBe(0);
      expect(globalPrivileges(['GRANT BACKUP_ADMIN,REPLICATION_SLAVE_ADMIN ON *.* TO `u`@`%`'])).toEqual(new Set(['BACKUP_ADMIN', 'REPLICATION_SLAVE_ADMIN']));
    });

    const roleLine = 'GRANT `cdc`@`%` TO `dbferry`@`%`';
    it.each([
      ['both by name (MySQL)', granted(mysql8, ['GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `dbferry`@`%`']), []],
      ['both by name (MySQL 5.7 quoting)', granted(mysql8, ["GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'dbferry'@'%'"]), []],
      ['ALL PRIVILEGES', granted(mariadb, ['GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` IDENTIFIED VIA unix_socket WITH GRANT OPTION']), []],
      ['BINLOG MONITOR and REPLICATION SLAVE (MariaDB 10.5+)', granted(mariadb, ['GRANT BINLOG MONITOR, REPLICATION SLAVE ON *.* TO `dbferry`@`%`']), []],
      ['REPLICATION REPLICA and SUPER', granted(mariadb, ['GRANT SUPER, REPLICATION REPLICA ON *.* TO `dbferry`@`%`']), []],
      ['granted to PUBLIC (MariaDB 10.11)', granted(mariadb, ['GRANT USAGE ON *.* TO `dbferry`@`%`', 'GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO PUBLIC']), []],
      // What MariaDB shows for a user whose default role (and the role granted to it) hold the privileges.
      [
        "through MariaDB's default role, nested",
        granted(mariadb, ['GRANT `outer_r` TO `dbferry`@`%`', 'GRANT USAGE ON *.* TO `dbferry`@`%`', 'GRANT `inner_r` TO `outer_r`', 'GRANT BINLOG MONITOR ON *.* TO `outer_r`', 'GRANT REPLICATION SLAVE ON *.* TO `inner_r`', 'SET DEFAULT ROLE `outer_r` FOR `dbferry`@`%`']),
        [],
      ],
      ['neither: only SELECT', granted(mysql8, ['GRANT SELECT ON *.* TO `dbferry`@`%`']), ['replication-client-grant:blocking', 'replication-grant:blocking']],
      ['database-level grants do not count', granted(mariadb, ['GRANT USAGE ON *.* TO `dbferry`@`%`', 'GRANT ALL PRIVILEGES ON `shop`.* TO `dbferry`@`%`']), ['replication-client-grant:blocking', 'replication-grant:blocking']],
      ['no REPLICATION SLAVE', granted(mariadb, ['GRANT SELECT, BINLOG MONITOR ON *.* TO `dbferry`@`%`']), ['replication-grant:blocking']],
      ['no REPLICATION CLIENT', granted(mysql8, ['GRANT SELECT, REPLICATION SLAVE ON *.* TO `dbferry`@`%`']), ['replication-client-grant:blocking']],
      // A role the session does not start with never reaches the binlog connection either.
      ['missing, the roles expanded (MariaDB, a role that is not the default)', granted(mariadb, ['GRANT `cdc` TO `dbferry`@`%`', 'GRANT SELECT ON *.* TO `dbferry`@`%`']), ['replication-client-grant:blocking', 'replication-grant:blocking']],
      ['missing, a role not expanded (MySQL)', granted(mysql8, ['GRANT SELECT ON *.* TO `dbferry`@`%`', roleLine], { rolesExpanded: false }), ['replication-client-grant:warning', 'replication-grant:warning']],
      ['missing, a role, and no word on expansion', granted({ version: mysql8.version, variables: mysql8.variables }, ['GRANT SELECT ON *.* TO `dbferry`@`%`', roleLine]), ['replication-client-grant:warning', 'replication-grant:warning']],
      ['missing, mandatory_roles not expanded (MySQL)', granted(withVars(mysql8, { mandatory_roles: '`cdc`@`%`' }), ['GRANT SELECT ON *.* TO `dbferry`@`%`'], { rolesExpanded: false }), ['replication-client-grant:warning', 'replication-grant:warning']],
      ['SHOW GRANTS not readable', { version: mysql8.version, variables: mysql8.variables }, ['replication-grant:warning']],
    ] as Array<[string, CdcSettings, string[]]>)('%s', (_name, s, expected) => {
      expect(grantCodes(s)).toEqual(expected);
    });

    it('says which privilege, why, and the GRANT to run, in the server flavour', () => {
      const my = cdcFindings(ep, { ...mysql8, grants: ['GRANT SELECT ON *.* TO `dbferry`@`%`'] }, {});
      expect(byCode(my, 'replication-grant')[0]!.message).toBe(
        `${ep.description}: the user lacks REPLICATION SLAVE on *.*, which reading the binary log as a replica needs: GRANT REPLICATION SLAVE ON *.* TO \`dbferry\`@\`%\``,
      );
      expect(byCode(my, 'replication-client-grant')[0]!.message).toMatch(/lacks REPLICATION CLIENT on \*\.\*, which SHOW MASTER STATUS .* GRANT REPLICATION CLIENT ON \*\.\* TO `dbferry`@`%`$/);
      const maria = cdcFindings(ep, { ...mariadb, grants: ['GRANT `cdc` TO `dbferry`@`%`', 'GRANT SELECT ON *.* TO `dbferry`@`%`'], rolesExpanded: false }, {});
      expect(byCode(maria, 'replication-grant')[0]!.message).toMatch(/REPLICATION SLAVE \(REPLICATION REPLICA\) on \*\.\* \(unless one of its roles grants it: roles are not followed\)/);
      expect(byCode(maria, 'replication-client-grant')[0]!.message).toMatch(/lacks BINLOG MONITOR \(formerly REPLICATION CLIENT\).*GRANT BINLOG MONITOR ON \*\.\*/);
    });
  });
});

describe('the replica server_id of a migration', () => {
  it('is the same for a run id every time, in [1e9, 4e9), and differs between runs', () => {
    const ids = Array.from({ length: 500 }, (_, i) => cdcServerId(`run-${i}`));
    for (const id of ids) {
      expect(Number.isInteger(id)).toBe(true);
      expect(id).toBeGreaterThanOrEqual(1_000_000_000);
      expect(id).toBeLessThan(4_000_000_000);
    }
    expect(new Set(ids).size).toBe(ids.length);
    expect(cdcServerId('0f8e2b3c-migration-run')).toBe(cdcServerId('0f8e2b3c-migration-run'));
  });
});
