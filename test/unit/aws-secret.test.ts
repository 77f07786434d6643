import { GetSecretValueCommand, ResourceNotFoundException, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { resolveSecret } from '../../activities/secrets';
import { parsePlan } from '../../plan';

const ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop/source-AbCdEf';

describe('aws-secret:ARN references (Secrets Manager faked at the SDK boundary)', () => {
  const sm = mockClient(SecretsManagerClient);
  afterEach(() => sm.reset());
  afterAll(() => sm.restore());

  test('a plan takes them for url, ca and webhook; a malformed ARN names the field', () => {
    const r = parsePlan({
      name: 'x',
      source: { engine: 'postgres', url: `aws-secret:${ARN}`, tls: { mode: 'verify-ca', ca: `aws-secret:${ARN}-ca` } },
      target: { engine: 'postgres', url: 'env:T' },
      alerts: { webhook: `aws-secret:${ARN}-hook` },
    });
    expect(r.ok).toBe(true);
    const bad = parsePlan({ name: 'x', source: { engine: 'postgres', url: 'aws-secret:shop/source' }, target: { engine: 'postgres', url: 'env:T' } });
    expect(bad.ok ? [] : bad.issues).toEqual([expect.objectContaining({ path: 'source.url', message: expect.stringContaining('expected aws-secret:ARN with ARN a Secrets Manager secret') })]);
  });

  test('a string secret is the value; RDS’s JSON becomes a URL; each from the ARN’s region', async () => {
    sm.on(GetSecretValueCommand, { SecretId: ARN }).resolves({ SecretString: 'postgres://app:s3cr%40t@db:5432/shop\n' });
    sm.on(GetSecretValueCommand, { SecretId: `${ARN}-rds` }).resolves({
      SecretString: JSON.stringify({ engine: 'postgres', username: 'app', password: 'p@ss:w/rd', host: 'shop.abc.eu-west-1.rds.amazonaws.com', port: 5432, dbname: 'shop' }),
    });
    sm.on(GetSecretValueCommand, { SecretId: `${ARN}-my` }).resolves({ SecretString: JSON.stringify({ engine: 'mysql', username: 'app', password: 'x', host: 'my', port: 3306, dbname: 'shop' }) });
    expect(await resolveSecret(`aws-secret:${ARN}`, 'source.url')).toBe('postgres://app:s3cr%40t@db:5432/shop');
    const url = new URL(await resolveSecret(`aws-secret:${ARN}-rds`, 'target.url'));
    expect([url.protocol, decodeURIComponent(url.username), decodeURIComponent(url.password), url.hostname, url.port, url.pathname]).toEqual([
      'postgres:',
      'app',
      'p@ss:w/rd',
      'shop.abc.eu-west-1.rds.amazonaws.com',
      '5432',
      '/shop',
    ]);
    expect(await resolveSecret(`aws-secret:${ARN}-my`, 'source.url')).toBe('mysql://app:x@my:3306/shop');
    expect(sm.commandCalls(GetSecretValueCommand).length).toBe(3);
    // Kept a minute: activities resolve their endpoints often.
    await resolveSecret(`aws-secret:${ARN}`, 'source.url');
    expect(sm.commandCalls(GetSecretValueCommand).length).toBe(3);
  });

  test('a secret the worker cannot read is SecretUnresolved, naming the field and the remedy, never a value', async () => {
    sm.on(GetSecretValueCommand).rejects(new ResourceNotFoundException({ message: "Secrets Manager can't find the specified secret.", $metadata: {} }));
    await expect(resolveSecret(`aws-secret:${ARN}-gone`, 'target.url')).rejects.toMatchObject({
      type: 'SecretUnresolved',
      nonRetryable: true,
      message: expect.stringContaining("target.url: GetSecretValue (target.url): AWS answered ResourceNotFoundException: Secrets Manager can't find the specified secret."),
    });
  });
});
