import { Signer } from '@aws-sdk/rds-signer';
import { libpqEnv } from '../../activities/postgres/pg-tools';
import { resolveEndpoint, withConnection } from '../../activities/pg/connection';
import { parsePlan, type Plan } from '../../plan';
import { scrubCredentials } from '../../plan/secret-ref';
import { createDatabase, dropDatabase, requiredEnv, uniqueName, withClient } from '../support/databases';

/**
 * `auth: iam`: the workers connect with an RDS IAM token as the password, a fresh one for each
 * connection. The token comes from the AWS SDK's signer, faked at that boundary: the test server
 * knows the token as the role's password.
 */
describe('RDS IAM authentication against a real PostgreSQL (the signer faked)', () => {
  const role = uniqueName('iam_user');
  const db = uniqueName('iam_db');
  let sign: jest.SpyInstance;
  let signed = 0;
  const token = 'prod.abc.eu-west-1.rds.amazonaws.com:5432/?Action=connect&DBUser=app&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20261202%2Feu-west-1%2Frds-db%2Faws4_request&X-Amz-Signature=0123abcd';

  beforeAll(async () => {
    await createDatabase('target', db);
    const admin = new URL(requiredEnv('DBFERRY_TEST_TARGET_URL'));
    await withClient(admin.toString(), (c) => c.query(`CREATE ROLE ${role} LOGIN PASSWORD '${token.replace(/'/g, "''")}'`));
    const url = new URL(admin);
    url.username = role;
    url.password = '';
    url.pathname = `/${db}`;
    process.env.IAM_TEST_URL = url.toString();
    sign = jest.spyOn(Signer.prototype, 'getAuthToken').mockImplementation(async () => {
      signed++;
      return token;
    });
  });

  afterAll(async () => {
    sign.mockRestore();
    await dropDatabase('target', db);
    await withClient(requiredEnv('DBFERRY_TEST_TARGET_URL'), (c) => c.query(`DROP ROLE IF EXISTS ${role}`));
  });

  const plan = (): Plan => {
    const r = parsePlan({
      name: 'iam',
      source: { engine: 'postgres', url: 'env:UNUSED' },
      target: { engine: 'postgres', url: 'env:IAM_TEST_URL', auth: 'iam', tls: { mode: 'require' } },
      aws: { region: 'eu-west-1' },
    });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    return r.plan;
  };

  it('connects as the URL’s user with a token made for each connection; the URL itself holds none', async () => {
    const ep = await resolveEndpoint(plan(), 'target');
    expect(ep.iam).toEqual({ host: '127.0.0.1', port: Number(new URL(requiredEnv('DBFERRY_TEST_TARGET_URL')).port), user: role, region: 'eu-west-1' });
    expect(ep.url).not.toContain('X-Amz');
    const before = signed;
    for (let i = 0; i < 2; i++) {
      const who = await withConnection(ep, 'iam test', async (c) => (await c.query<{ u: string; ssl: boolean }>('SELECT current_user AS u, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0]);
      expect(who).toEqual({ u: role, ssl: true });
    }
    expect(signed - before).toBe(2);
    // pg_dump / pg_restore get a fresh token too, in their environment (never their arguments).
    const env = await libpqEnv(ep, plan().target.tls, { appName: 'iam test', workDir: '/tmp', toolMajor: 15 });
    expect(env.PGPASSWORD).toBe(token);
    expect(env.PGUSER).toBe(role);
  });

  it('a token is scrubbed like a password wherever it appears in a message', () => {
    expect(scrubCredentials(`could not connect: ${token}`)).not.toMatch(/0123abcd|AKIAEXAMPLE/);
  });
});
