/**
 * Secret references in a plan (`env:VAR`, `file:PATH`, or an inline connection URL without a
 * password). Workers resolve them; the plan, workflow history and search attributes only ever
 * hold the reference, so nothing here may echo a password.
 */

export type SecretRef =
  | { kind: 'env'; name: string }
  | { kind: 'file'; path: string }
  | { kind: 'aws-secret'; arn: string }
  | { kind: 'inline'; value: string };

/** An AWS Secrets Manager secret's ARN (its region is the fourth part). */
export const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:([a-z]{2}(?:-[a-z]+)+-\d+):\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/;

export const ENV_VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Query parameters that carry a password in libpq / MySQL connection URLs. */
const PASSWORD_PARAMS = new Set(['password', 'sslpassword', 'pass', 'pwd']);

const SCHEMES: Record<string, readonly string[]> = {
  postgres: ['postgres', 'postgresql'],
  mysql: ['mysql', 'mariadb'],
};

const DEFAULT_PORTS: Record<string, string> = { postgres: '5432', mysql: '3306' };

export function parseSecretRef(s: string): SecretRef {
  if (s.startsWith('env:')) return { kind: 'env', name: s.slice(4) };
  if (s.startsWith('file:')) return { kind: 'file', path: s.slice(5) };
  if (s.startsWith('aws-secret:')) return { kind: 'aws-secret', arn: s.slice(11) };
  return { kind: 'inline', value: s };
}

/** The URL schemes an inline connection URL may use for an engine. */
export function urlSchemesFor(engine: string): readonly string[] {
  return SCHEMES[engine] ?? [];
}

interface UrlParts {
  scheme: string;
  /** Everything between `scheme://` and the `@` that ends the user info, or null. */
  userinfo: string | null;
  /** The rest after the user info: host, port, path, query, fragment. */
  rest: string;
}

/**
 * Splits on the last `@` before any query or fragment rather than using `URL`, because an
 * unescaped `@` or `/` in a password makes `URL` fail or split elsewhere — and a redaction that
 * fails open would print the password.
 */
function splitUrl(url: string): UrlParts | null {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url);
  if (!m) return null;
  const afterScheme = url.slice(m[0].length);
  const qf = afterScheme.search(/[?#]/);
  const authorityish = qf < 0 ? afterScheme : afterScheme.slice(0, qf);
  const at = authorityish.lastIndexOf('@');
  if (at < 0) return { scheme: m[1]!.toLowerCase(), userinfo: null, rest: afterScheme };
  return { scheme: m[1]!.toLowerCase(), userinfo: afterScheme.slice(0, at), rest: afterScheme.slice(at + 1) };
}

function redactQuery(rest: string): { text: string; hadPassword: boolean } {
  const q = rest.indexOf('?');
  if (q < 0) return { text: rest, hadPassword: false };
  const hashAt = rest.indexOf('#', q);
  const query = hashAt < 0 ? rest.slice(q + 1) : rest.slice(q + 1, hashAt);
  const fragment = hashAt < 0 ? '' : rest.slice(hashAt);
  let hadPassword = false;
  const parts = query.split('&').map((kv) => {
    const eq = kv.indexOf('=');
    const key = safeDecode(eq < 0 ? kv : kv.slice(0, eq)).toLowerCase();
    if (PASSWORD_PARAMS.has(key) && eq >= 0 && kv.length > eq + 1) {
      hadPassword = true;
      return `${kv.slice(0, eq)}=***`;
    }
    return kv;
  });
  return { text: `${rest.slice(0, q)}?${parts.join('&')}${fragment}`, hadPassword };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** True when an inline URL carries a password (in the user info or as a query parameter). */
export function urlHasPassword(url: string): boolean {
  const parts = splitUrl(url);
  if (!parts) return false;
  if (parts.userinfo !== null) {
    const colon = parts.userinfo.indexOf(':');
    if (colon >= 0 && colon < parts.userinfo.length - 1) return true;
  }
  return redactQuery(parts.rest).hadPassword;
}

export function redactUrl(url: string): string {
  const parts = splitUrl(url);
  if (!parts) return url;
  const prefix = url.slice(0, url.indexOf('://') + 3);
  let userinfo = '';
  if (parts.userinfo !== null) {
    const colon = parts.userinfo.indexOf(':');
    userinfo = colon >= 0 && colon < parts.userinfo.length - 1 ? `${parts.userinfo.slice(0, colon)}:***@` : `${parts.userinfo}@`;
  }
  return `${prefix}${userinfo}${redactQuery(parts.rest).text}`;
}

/**
 * `engine/host:port/database`, without credentials: what search attributes and messages show.
 * A reference that is not resolved yet is shown as the reference itself (never a secret).
 */
export function describeEndpoint(engine: string, url: string): string {
  const ref = parseSecretRef(url);
  if (ref.kind !== 'inline') return `${engine}/${url}`;
  const parts = splitUrl(url);
  if (!parts) return `${engine}/?`;
  const rest = parts.rest;
  const end = rest.search(/[/?#]/);
  const hostPort = end < 0 ? rest : rest.slice(0, end);
  const afterHost = end < 0 ? '' : rest.slice(end);
  const pathEnd = afterHost.search(/[?#]/);
  const path = pathEnd < 0 ? afterHost : afterHost.slice(0, pathEnd);
  const query = pathEnd < 0 ? '' : afterHost.slice(pathEnd + 1).split('#')[0]!;
  const params = new Map<string, string>();
  for (const kv of query.split('&')) {
    const eq = kv.indexOf('=');
    if (eq > 0) params.set(safeDecode(kv.slice(0, eq)), safeDecode(kv.slice(eq + 1)));
  }

  let host = hostPort;
  let port = '';
  const bracket = /^(\[[^\]]*\])(?::(\d*))?$/.exec(hostPort);
  if (bracket) {
    host = bracket[1]!;
    port = bracket[2] ?? '';
  } else if (!hostPort.includes(',')) {
    const colon = hostPort.lastIndexOf(':');
    if (colon >= 0) {
      host = hostPort.slice(0, colon);
      port = hostPort.slice(colon + 1);
    }
  }
  host = safeDecode(host) || params.get('host') || 'localhost';
  port = port || params.get('port') || DEFAULT_PORTS[engine] || '';
  const database = safeDecode(path.replace(/^\//, '')) || params.get('dbname') || '';
  return `${engine}/${host}${port && !host.includes(',') ? `:${port}` : ''}/${database}`;
}

export type SecretField = 'url' | 'ca' | 'webhook';

/**
 * Why a secret field's value is not acceptable, or null when it is. `engine` applies to
 * connection URLs only; without it any scheme passes (the engine itself is invalid elsewhere).
 */
export function secretRefProblem(value: string, field: SecretField, engine?: string): string | null {
  const ref = parseSecretRef(value);
  if (ref.kind === 'env') {
    return ENV_VAR_NAME.test(ref.name) ? null : 'expected env:VAR with VAR a variable name (letters, digits, _; not starting with a digit)';
  }
  if (ref.kind === 'file') {
    return ref.path.length > 0 ? null : 'expected file:PATH with a non-empty path';
  }
  if (ref.kind === 'aws-secret') {
    return SECRET_ARN.test(ref.arn) ? null : 'expected aws-secret:ARN with ARN a Secrets Manager secret (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)';
  }
  if (field !== 'url') {
    return 'expected a reference: env:VAR, file:PATH or aws-secret:ARN';
  }
  const parts = splitUrl(value);
  if (!parts) {
    return 'expected a connection URL given by reference: env:VAR, file:PATH or aws-secret:ARN (or an inline URL without a password)';
  }
  if (urlHasPassword(value)) {
    return 'an inline URL must not contain a password: reference the URL as env:VAR, file:PATH or aws-secret:ARN instead (the plan ends up in workflow history)';
  }
  const schemes = engine === undefined ? undefined : urlSchemesFor(engine);
  if (schemes && schemes.length > 0 && !schemes.includes(parts.scheme)) {
    return `expected a ${engine} URL (${schemes.map((s) => `${s}://`).join(' or ')}), or a reference env:VAR, file:PATH or aws-secret:ARN`;
  }
  return null;
}

/**
 * A value safe to show in a message: references, and connection URLs with the password masked.
 * Anything else in a secret field could be a bare password, and a webhook URL usually carries
 * its token in the path, so those are hidden altogether.
 */
export function redactSecretValue(value: string, field: SecretField = 'url'): string {
  const ref = parseSecretRef(value);
  if (ref.kind !== 'inline') return value;
  if (field === 'url' && splitUrl(value)) return redactUrl(value);
  return '***';
}

/**
 * Masks credentials wherever they stand in a text: `scheme://user:pw@` and `password=` parameters
 * (a plan value, a driver message, a file given by mistake). The one scrubber of the project.
 */
export function scrubCredentials(text: string): string {
  return text
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:\s/@]+:)[^@\s]+@/gi, '$1***@')
    .replace(/([?&\s]password=)[^&\s]+/gi, '$1***')
    // An RDS IAM token (a presigned request) is a password for 15 minutes.
    .replace(/(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s]+/gi, '$1***');
}
