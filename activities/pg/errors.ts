import { ApplicationFailure } from '@temporalio/common';
import { FailureType, NEEDS_PERSON, type FailureDetails } from '../../plan/failure-types';
import { scrub } from '../scrub';

export { scrub };

export interface ErrorContext {
  /** Where it happened, without credentials: `source postgres/127.0.0.1:5432/shop`. */
  endpoint: string;
  table?: string;
  /** Secrets to scrub from the message should a driver ever echo them. */
  secrets?: string[];
  /** What dbferry was doing, e.g. `creating table "s"."t"`. */
  doing?: string;
}

const TRANSIENT_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);

/** SQLSTATE (or Node error code) → failure type. */
export function classifyPostgresError(code: string | undefined, message: string, side: 'source' | 'target'): FailureType {
  if (!code) {
    return /terminated|timeout|ECONN|socket|closed/i.test(message) ? FailureType.Transient : FailureType.DatabaseError;
  }
  if (TRANSIENT_NODE_CODES.has(code)) return FailureType.Transient;
  if (code === '3D000') return side === 'target' ? FailureType.TargetDatabaseMissing : FailureType.SourceObjectMissing;
  if (code === '42501') return FailureType.PermissionDenied;
  if (['42P07', '42710', '42P06', '42723'].includes(code)) return FailureType.TargetObjectConflict;
  if (code === '42P01' || code === '42704' || code === '42883') return FailureType.SourceObjectMissing;
  if (code === '40001' || code === '40P01' || code === '55P03' || code === '57014') return FailureType.Transient;
  const cls = code.slice(0, 2);
  if (cls === '08' || cls === '53' || cls === '57' || cls === '58') return FailureType.Transient;
  if (cls === '28') return FailureType.AuthenticationFailed;
  if (cls === '22' || cls === '23') return FailureType.DataError;
  return FailureType.DatabaseError;
}

/**
 * pg_dump and pg_restore report no SQLSTATE, only the server's message text (always in English:
 * dbferry runs them with LC_ALL=C, and the server's part is in the server's language, so the
 * patterns below are the English ones plus the codes-free parts that do not depend on it).
 * Checked in order: a failed connection may also say why it failed (authentication).
 */
const TOOL_PATTERNS: Array<[RegExp, FailureType | ((side: 'source' | 'target') => FailureType)]> = [
  [/password authentication failed|authentication failed for user|no pg_hba\.conf entry|FATAL:\s+role ".*" does not exist|fe_sendauth: no password supplied|server requested .* authentication/i, FailureType.AuthenticationFailed],
  [/permission denied|must be owner of|must be superuser|must be a member of|must have (?:admin option|privileges)/i, FailureType.PermissionDenied],
  [/database ".*" does not exist/i, (side) => (side === 'target' ? FailureType.TargetDatabaseMissing : FailureType.SourceObjectMissing)],
  [/no matching (?:tables|schemas) were found/i, FailureType.SourceObjectMissing],
  [/server version mismatch|unsupported version .* in file header|could not read archive: unsupported/i, FailureType.Unsupported],
  [/violates (?:check|not-null|foreign key|unique|exclusion) constraint|invalid input (?:syntax|value)|out of range|value too long|invalid byte sequence|has no equivalent in encoding|duplicate key value/i, FailureType.DataError],
  [/already exists/i, FailureType.TargetObjectConflict],
  [
    /could not connect|connection to server .* failed|Connection refused|server closed the connection unexpectedly|terminating connection|could not receive data|could not send data|SSL SYSCALL|the database system is (?:starting up|shutting down|in recovery mode|not yet accepting connections)|too many (?:clients|connections)|remaining connection slots|deadlock detected|could not serialize|canceling statement due to (?:lock timeout|statement timeout|conflict with recovery)|could not obtain lock|timeout expired|Connection timed out|No route to host|could not translate host name/i,
    FailureType.Transient,
  ],
];

/** The failure type of a pg_dump / pg_restore failure, from its last lines of output. */
export function classifyToolError(text: string, side: 'source' | 'target'): FailureType {
  for (const [re, type] of TOOL_PATTERNS) if (re.test(text)) return typeof type === 'function' ? type(side) : type;
  return FailureType.DatabaseError;
}

const SOURCE_CONFLICT_HINT =
  'the conflicting object is on the source (see the message): remove or change it there, or name another one in the plan (cdc.slot, cdc.publication), then run dbferry retry';

export const HINTS: Partial<Record<FailureType, string>> = {
  [FailureType.AuthenticationFailed]: 'check the user and password the URL reference resolves to, then run dbferry retry',
  [FailureType.PermissionDenied]: 'grant the missing privilege, then run dbferry retry',
  [FailureType.TargetObjectConflict]: 'drop or rename the conflicting object on the target (or exclude the table), then run dbferry retry',
  [FailureType.TargetDatabaseMissing]: 'create the database or set target.createDatabase: true, then run dbferry retry',
  [FailureType.SourceObjectMissing]: 'the object disappeared from the source; check the table selection, then run dbferry retry',
  [FailureType.DataError]: 'the target refused a value; fix the source row or the target type, then run dbferry retry',
};

/**
 * Turns a driver error into an ApplicationFailure with a stable type, a message that says where
 * and what (never a password), and non-retryable when a person has to act.
 */
export function toFailure(err: unknown, side: 'source' | 'target', ctx: ErrorContext): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  const e = err as { code?: string; message?: string; detail?: string; table?: string; constraint?: string };
  const raw = e?.message ?? String(err);
  const type = classifyPostgresError(e?.code, raw, side);
  const where = [ctx.endpoint, ctx.table ? `table ${ctx.table}` : undefined].filter(Boolean).join(', ');
  const doing = ctx.doing ? ` while ${ctx.doing}` : '';
  const detail = e?.detail ? ` (${e.detail})` : '';
  const message = scrub(`${where}: ${raw}${detail}${doing}`, ctx.secrets);
  // An object in the way on the source (e.g. a publication already holding a table) is not the
  // target's to fix: the hint names the side that holds it.
  const hint =
    side === 'source' && type === FailureType.TargetObjectConflict
      ? SOURCE_CONFLICT_HINT
      : /row-level security/i.test(raw)
        ? `the ${side} user is subject to row-level security on this table (dbferry reads and writes every row or none): give it BYPASSRLS (ALTER ROLE … BYPASSRLS), then run dbferry retry`
        : HINTS[type];
  const details: FailureDetails = { endpoint: ctx.endpoint, table: ctx.table, code: e?.code, hint };
  return ApplicationFailure.create({ type, message, nonRetryable: NEEDS_PERSON.includes(type), details: [details] });
}
