import type { LogEntry } from '@temporalio/worker';
import { temporalConnectProblem } from '../../client/temporal';
import { formatLogLine } from '../../worker/runtime';

const entry = (message: string, meta: Record<string, unknown> = {}): LogEntry => ({ level: 'INFO', message, meta, timestampNanos: 1_764_000_000_000_000_000n });

describe("a worker's log lines", () => {
  it('JSON: one object per line, secrets scrubbed value by value (the line stays valid JSON, the other fields intact)', () => {
    const line = formatLogLine(
      entry('connecting with password=s3cret to postgres://app:hunter2@db:5432/shop', { migration: 'shop', step: 'full-load', table: 'public.a', attempt: 2, taskToken: 'AAAA', url: 'mysql://root:pw@x/y' }),
      'json',
      '123@host',
    );
    const parsed = JSON.parse(line) as Record<string, unknown>;
    expect(parsed).toEqual(expect.objectContaining({ level: 'info', migration: 'shop', step: 'full-load', table: 'public.a', attempt: 2, worker: '123@host' }));
    expect(parsed.taskToken).toBeUndefined();
    expect(line).not.toMatch(/s3cret|hunter2|:pw@/);
    expect(String(parsed.msg)).toContain('password=');
  });

  it('text: one readable line with the fields that matter, secrets scrubbed', () => {
    const line = formatLogLine(entry('copied public.a: 10 rows', { migration: 'shop', step: 'full-load', namespace: 'default', error: new Error('conn postgres://u:topsecret@h/d failed') }), 'text', 'w1');
    expect(line).toMatch(/^\d{4}-\d\d-\d\dT\S+ INFO  copied public\.a: 10 rows migration=shop step=full-load error=/);
    expect(line).not.toContain('namespace=');
    expect(line).not.toContain('topsecret');
  });
});

describe('what failed when connecting to Temporal', () => {
  const o = { address: 'temporal.corp:7233', tls: true as const };
  it('a refused or unreachable address is not called a TLS problem, even with TLS on', () => {
    expect(temporalConnectProblem(new Error('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 10.0.0.1:7233'), o)).toMatch(/^cannot reach Temporal at temporal\.corp:7233: .*ECONNREFUSED/);
    expect(temporalConnectProblem(new Error('getaddrinfo ENOTFOUND temporal-tls.corp'), { ...o, address: 'temporal-tls.corp:7233' })).toMatch(/^cannot reach/);
  });
  it('credentials refused: named as such, before anything else', () => {
    expect(temporalConnectProblem(new Error('7 PERMISSION_DENIED: Request unauthorized for namespace tls-prod'), { ...o, apiKey: 'k' })).toMatch(/refused the credentials: .*check TEMPORAL_API_KEY/);
  });
  it('a certificate the CA did not sign: a TLS problem naming the CA setting', () => {
    expect(temporalConnectProblem(new Error('TLS handshake: self-signed certificate in certificate chain'), o)).toMatch(/^TLS with Temporal at temporal\.corp:7233 failed: .*self-signed.*TEMPORAL_TLS_SERVER_CA_CERT_PATH/);
  });
});
