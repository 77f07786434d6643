import { ApplicationFailure } from '@temporalio/common';
import { FailureType, NEEDS_PERSON, type FailureDetails } from '../../plan/failure-types';
import { classifyPostgresError, classifyToolError, scrub, toFailure } from '../../activities/pg/errors';

/** A pg-like driver error. */
function pgError(code: string | undefined, message: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { code, ...extra });
}

describe('classifyPostgresError', () => {
  it.each([
    ['28P01', 'target', FailureType.AuthenticationFailed],
    ['28000', 'source', FailureType.AuthenticationFailed],
    ['42501', 'source', FailureType.PermissionDenied],
    ['42P07', 'target', FailureType.TargetObjectConflict],
    ['42710', 'target', FailureType.TargetObjectConflict],
    ['42P06', 'target', FailureType.TargetObjectConflict],
    ['3D000', 'target', FailureType.TargetDatabaseMissing],
    ['3D000', 'source', FailureType.SourceObjectMissing],
    ['42P01', 'source', FailureType.SourceObjectMissing],
    ['08006', 'source', FailureType.Transient],
    ['08001', 'target', FailureType.Transient],
    ['57P01', 'source', FailureType.Transient],
    ['53300', 'target', FailureType.Transient],
    ['40001', 'target', FailureType.Transient],
    ['40P01', 'target', FailureType.Transient],
    ['ECONNREFUSED', 'source', FailureType.Transient],
    ['ECONNRESET', 'target', FailureType.Transient],
    ['ENOTFOUND', 'target', FailureType.Transient],
    ['23505', 'target', FailureType.DataError],
    ['23503', 'target', FailureType.DataError],
    ['22001', 'target', FailureType.DataError],
    ['XX000', 'target', FailureType.DatabaseError],
    ['42601', 'target', FailureType.DatabaseError],
  ] as const)('%s on the %s → %s', (code, side, expected) => {
    expect(classifyPostgresError(code, 'whatever', side)).toBe(expected);
  });

  it('without a code, looks at the message: connection trouble is transient, anything else a database error', () => {
    expect(classifyPostgresError(undefined, 'Connection terminated unexpectedly', 'source')).toBe(FailureType.Transient);
    expect(classifyPostgresError(undefined, 'timeout expired', 'target')).toBe(FailureType.Transient);
    expect(classifyPostgresError(undefined, 'Client was closed and is not queryable', 'target')).toBe(FailureType.Transient);
    expect(classifyPostgresError(undefined, 'something odd', 'target')).toBe(FailureType.DatabaseError);
  });
});

describe('scrub', () => {
  it('removes user:password@ from connection URLs, keeping the user and host', () => {
    const out = scrub('could not connect to postgres://alice:s3cr3t@db.example.com:5432/shop now');
    expect(out).toBe('could not connect to postgres://alice:***@db.example.com:5432/shop now');
    expect(out).not.toContain('s3cr3t');
  });

  it('scrubs every URL in the text, whatever the scheme', () => {
    const out = scrub('postgresql://u:pw1@a/x and mysql://v:pw2@b/y');
    expect(out).not.toMatch(/pw1|pw2/);
    expect(out).toContain('postgresql://u:***@a/x');
    expect(out).toContain('mysql://v:***@b/y');
  });

  it('removes listed secrets wherever they appear', () => {
    const out = scrub('password "hunter22" rejected; hunter22 again', ['hunter22']);
    expect(out).toBe('password "***" rejected; *** again');
  });

  it('ignores empty secrets but masks even a very short one (a mangled message beats a leaked password)', () => {
    expect(scrub('a b c', [''])).toBe('a b c');
    expect(scrub('a b c', ['b'])).toBe('a *** c');
  });

  it('masks a password given as a URL query parameter', () => {
    expect(scrub('connect postgres://h/db?sslmode=require&password=hunter2 failed')).toBe('connect postgres://h/db?sslmode=require&password=*** failed');
  });

  it('leaves text without credentials alone', () => {
    const text = 'relation "public.t" does not exist at postgres://db:5432/shop';
    expect(scrub(text, ['zzzzzz'])).toBe(text);
  });
});

describe('toFailure', () => {
  const ctx = { endpoint: 'target postgres/db:5432/shop', table: 'public.orders', secrets: ['p@ss w0rd!', 'p%40ss%20w0rd!'], doing: 'copying public.orders' };

  it('gives a typed ApplicationFailure that says where and what, with details', () => {
    const f = toFailure(pgError('23505', 'duplicate key value violates unique constraint "orders_pkey"', { detail: 'Key (id)=(1) already exists.' }), 'target', ctx);
    expect(f).toBeInstanceOf(ApplicationFailure);
    expect(f.type).toBe(FailureType.DataError);
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toBe(
      'target postgres/db:5432/shop, table public.orders: duplicate key value violates unique constraint "orders_pkey" (Key (id)=(1) already exists.) while copying public.orders',
    );
    const d = f.details?.[0] as FailureDetails;
    expect(d).toMatchObject({ endpoint: 'target postgres/db:5432/shop', table: 'public.orders', code: '23505' });
    expect(d.hint).toMatch(/dbferry retry/);
  });

  it.each([
    ['28P01', FailureType.AuthenticationFailed],
    ['42501', FailureType.PermissionDenied],
    ['42P07', FailureType.TargetObjectConflict],
    ['3D000', FailureType.TargetDatabaseMissing],
  ] as const)('%s needs a person: non-retryable %s', (code, type) => {
    const f = toFailure(pgError(code, 'no'), 'target', ctx);
    expect(f.type).toBe(type);
    expect(f.nonRetryable).toBe(true);
    expect(NEEDS_PERSON).toContain(type);
  });

  it.each(['08006', '57P01', '40001', 'ECONNREFUSED'])('%s is transient: retryable', (code) => {
    const f = toFailure(pgError(code, 'gone'), 'source', ctx);
    expect(f.type).toBe(FailureType.Transient);
    expect(f.nonRetryable).toBe(false);
  });

  it('an unknown database error stays retryable (DatabaseError is not a needs-a-person type)', () => {
    const f = toFailure(pgError('XX000', 'internal'), 'target', ctx);
    expect(f.type).toBe(FailureType.DatabaseError);
    expect(f.nonRetryable).toBe(false);
  });

  it('never carries the password, even when the driver echoes the connection string', () => {
    const url = 'postgres://loader:p%40ss%20w0rd!@db.example.com:5432/shop';
    const f = toFailure(
      pgError('28P01', `password authentication failed for user "loader" (${url}); raw password p@ss w0rd!`, { detail: `connection ${url}` }),
      'target',
      { ...ctx, table: undefined, doing: 'connecting (load)' },
    );
    expect(f.message).not.toContain('p@ss w0rd!');
    expect(f.message).not.toContain('p%40ss%20w0rd!');
    expect(f.message).not.toContain('w0rd');
    expect(f.message).toContain('postgres://loader:***@db.example.com:5432/shop');
    expect(f.message).toContain('password authentication failed for user "loader"');
    expect(JSON.stringify(f.details)).not.toContain('w0rd');
  });

  it('scrubs URLs even when no secrets are listed', () => {
    const f = toFailure(pgError(undefined, 'connect ECONNREFUSED postgres://u:topsecret@h:1/d'), 'source', { endpoint: 'source postgres/h:1/d' });
    expect(f.message).not.toContain('topsecret');
    expect(f.type).toBe(FailureType.Transient);
    expect(f.nonRetryable).toBe(false);
  });

  it('handles a thrown non-Error value', () => {
    const f = toFailure('plain string failure', 'target', { endpoint: 'target x' });
    expect(f.type).toBe(FailureType.DatabaseError);
    expect(f.message).toBe('target x: plain string failure');
  });

  it('passes an ApplicationFailure through unchanged', () => {
    const original = ApplicationFailure.create({ type: FailureType.Unsupported, message: 'no', nonRetryable: true });
    expect(toFailure(original, 'target', ctx)).toBe(original);
  });
});

describe('toFailure names the side that holds a conflicting object', () => {
  it('a conflict on the source hints at the source, one on the target at the target', () => {
    const err = pgError('42710', 'relation "payment" is already member of publication "other"');
    const onSource = toFailure(err, 'source', { endpoint: 'source postgres/db:5432/shop' });
    expect(onSource.message).toMatch(/^source postgres/);
    expect((onSource.details?.[0] as FailureDetails).hint).toMatch(/on the source/);
    expect((onSource.details?.[0] as FailureDetails).hint).not.toMatch(/on the target/);
    const onTarget = toFailure(pgError('42P07', 'relation "orders" already exists'), 'target', { endpoint: 'target postgres/db2:5432/shop' });
    expect((onTarget.details?.[0] as FailureDetails).hint).toMatch(/on the target/);
  });
});

describe('classifyToolError: pg_dump / pg_restore output', () => {
  it.each([
    ['pg_dump: error: connection to server at "10.0.0.7", port 5432 failed: FATAL:  password authentication failed for user "app"', 'source', FailureType.AuthenticationFailed],
    ['pg_restore: error: connection to server at "db" (10.0.0.7), port 5432 failed: FATAL:  no pg_hba.conf entry for host "10.0.0.9"', 'target', FailureType.AuthenticationFailed],
    ['pg_dump: error: query failed: ERROR:  permission denied for table orders', 'source', FailureType.PermissionDenied],
    ['pg_restore: error: could not execute query: ERROR:  must be owner of extension citext', 'target', FailureType.PermissionDenied],
    ['pg_restore: error: could not execute query: ERROR:  relation "orders" already exists', 'target', FailureType.TargetObjectConflict],
    ['pg_restore: error: COPY failed for table "orders": ERROR:  new row for relation "orders" violates check constraint "planted"', 'target', FailureType.DataError],
    ['pg_restore: error: COPY failed for table "t": ERROR:  invalid input syntax for type integer: "x"', 'target', FailureType.DataError],
    ['pg_dump: error: no matching tables were found for pattern ""public"."gone""', 'source', FailureType.SourceObjectMissing],
    ['pg_restore: error: connection to server at "h", port 5432 failed: FATAL:  database "shop" does not exist', 'target', FailureType.TargetDatabaseMissing],
    ['pg_dump: error: aborting because of server version mismatch', 'source', FailureType.Unsupported],
    ['pg_dump: error: connection to server at "10.0.0.7", port 5432 failed: Connection refused', 'source', FailureType.Transient],
    ['pg_restore: error: could not execute query: server closed the connection unexpectedly', 'target', FailureType.Transient],
    ['pg_dump: error: query failed: ERROR:  canceling statement due to lock timeout', 'source', FailureType.Transient],
    ['pg_dump: error: query failed: FATAL:  terminating connection due to administrator command', 'source', FailureType.Transient],
    ['pg_restore: error: could not execute query: ERROR:  function public.audit() does not exist', 'target', FailureType.DatabaseError],
    ['pg_restore: error: could not write to file: No space left on device', 'target', FailureType.DatabaseError],
  ] as const)('%s (%s) → %s', (text, side, expected) => {
    expect(classifyToolError(text, side)).toBe(expected);
  });

  it('a restore-time "role does not exist" is not an authentication failure', () => {
    expect(classifyToolError('pg_restore: error: could not execute query: ERROR:  role "app_reader" does not exist', 'target')).toBe(FailureType.DatabaseError);
  });
});
