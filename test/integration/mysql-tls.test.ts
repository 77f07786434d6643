import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';
import { Signer } from '@aws-sdk/rds-signer';
import { closeMysql, connectMysql, resolveMysqlEndpoint } from '../../activities/mysql/connection';
import { mysqlEngine } from '../../activities/mysql/mysql-engine';
import { startMariaDb, type MariaDbServer } from '../../local/mariadb-server';
import { parsePlan } from '../../plan';

jest.setTimeout(3 * 60_000);

/**
 * TLS to a MySQL source, on a real MariaDB serving a certificate of a test CA, with a user that
 * the server lets in only over TLS (REQUIRE SSL): each `source.tls.mode` connects or refuses as
 * it does for PostgreSQL, and a refusal names the source, never the password.
 */
describe('MySQL (MariaDB) source over TLS', () => {
  let maria: MariaDbServer;
  let dir: string;
  const password = 'tls-pw-5b1e';

  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  /** A CA and a certificate it signs for 127.0.0.1 and localhost. */
  const makeCa = (name: string) => {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.pem`);
  };

  beforeAll(async () => {
    mkdirSync(join(__dirname, '..', '..', '.tmp'), { recursive: true });
    dir = mkdtempSync(join(__dirname, '..', '..', '.tmp', 'mysql-tls-'));
    chmodSync(dir, 0o755);
    makeCa('test-ca');
    makeCa('other-ca');
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr');
    writeFileSync(join(dir, 'san.ext'), 'subjectAltName = IP:127.0.0.1, DNS:localhost\n');
    openssl('x509', '-req', '-in', 'server.csr', '-CA', 'test-ca.pem', '-CAkey', 'test-ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.ext', '-out', 'server.pem');
    // The server runs as its own OS user: it must read its key.
    for (const f of ['server.key', 'server.pem']) chmodSync(join(dir, f), 0o644);
    maria = await startMariaDb({ baseDir: join(__dirname, '..', '..', '.tmp', 'test-servers'), tls: { cert: join(dir, 'server.pem'), key: join(dir, 'server.key') } });
    const c = await createConnection({ uri: maria.url(), multipleStatements: true });
    await c.query(`CREATE DATABASE shop; CREATE TABLE shop.items (id int PRIMARY KEY);
      CREATE USER 'tls_user'@'127.0.0.1' IDENTIFIED BY '${password}' REQUIRE SSL; GRANT SELECT ON shop.* TO 'tls_user'@'127.0.0.1';`);
    await c.end();
    process.env.DBFERRY_TEST_TLS_URL = `mysql://tls_user:${password}@127.0.0.1:${maria.port}/shop`;
  });

  afterAll(async () => {
    await maria?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Introspects the source with the plan's `source.tls`; the error message when it refuses. */
  const connect = async (tls: Record<string, string>): Promise<string> => {
    const parsed = parsePlan({ name: 'tls', mode: 'full-load', source: { engine: 'mysql', url: 'env:DBFERRY_TEST_TLS_URL', tls }, target: { engine: 'postgres', url: 'env:UNUSED' } });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    try {
      const model = await (await mysqlEngine(parsed.plan)).introspect();
      return `connected: ${model.tables.map((t) => `${t.schema}.${t.name}`).join(',')}`;
    } catch (err) {
      return (err as Error).message;
    }
  };

  it('connects over TLS with require, verify-ca and verify-full when the CA is right', async () => {
    const ca = `file:${join(dir, 'test-ca.pem')}`;
    expect(await connect({ mode: 'require' })).toBe('connected: shop.items');
    expect(await connect({ mode: 'verify-ca', ca })).toBe('connected: shop.items');
    expect(await connect({ mode: 'verify-full', ca })).toBe('connected: shop.items');
  });

  it('auth: iam connects with an RDS IAM token made for each connection (the AWS SDK signer faked)', async () => {
    const token = 'my.abc.eu-west-1.rds.amazonaws.com:3306/?Action=connect&DBUser=iam_user&X-Amz-Signature=feed';
    const c = await createConnection({ uri: maria.url(), multipleStatements: true });
    await c.query(`CREATE USER 'iam_user'@'127.0.0.1' IDENTIFIED BY '${token}' REQUIRE SSL; GRANT SELECT ON shop.* TO 'iam_user'@'127.0.0.1';`);
    await c.end();
    let signed = 0;
    const sign = jest.spyOn(Signer.prototype, 'getAuthToken').mockImplementation(async () => {
      signed++;
      return token;
    });
    try {
      process.env.DBFERRY_TEST_IAM_URL = `mysql://iam_user@127.0.0.1:${maria.port}/shop`;
      const parsed = parsePlan({
        name: 'iam',
        mode: 'full-load',
        source: { engine: 'mysql', url: 'env:DBFERRY_TEST_IAM_URL', auth: 'iam', tls: { mode: 'require' } },
        target: { engine: 'postgres', url: 'env:UNUSED' },
        aws: { region: 'eu-west-1' },
      });
      if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
      const ep = await resolveMysqlEndpoint(parsed.plan);
      expect(ep.iam).toEqual({ host: '127.0.0.1', port: maria.port, user: 'iam_user', region: 'eu-west-1' });
      for (let i = 0; i < 2; i++) {
        const my = await connectMysql(ep, 'iam test');
        const [rows] = await my.query('SELECT CURRENT_USER() AS u');
        await closeMysql(my);
        expect(rows).toEqual([{ u: 'iam_user@127.0.0.1' }]);
      }
      expect(signed).toBe(2);
    } finally {
      sign.mockRestore();
    }
  });

  it('refuses, naming the source, without TLS (the user requires it) and with a certificate of another CA', async () => {
    const without = await connect({ mode: 'disable' });
    expect(without).toMatch(new RegExp(`^source mysql/127\\.0\\.0\\.1:${maria.port}/shop: Access denied`));
    const wrongCa = await connect({ mode: 'verify-ca', ca: `file:${join(dir, 'other-ca.pem')}` });
    expect(wrongCa).toMatch(new RegExp(`^source mysql/127\\.0\\.0\\.1:${maria.port}/shop: .*(certificate|self.signed)`, 'i'));
    for (const m of [without, wrongCa]) expect(m).not.toContain(password);
  });
});
