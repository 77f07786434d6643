/**
 * The stable `type` of every failure an activity raises. The workflow and the CLI branch on
 * these, never on message text. `needsPerson` types are raised non-retryable: retrying them
 * without a human changing something cannot succeed.
 */
export const FailureType = {
  /** Connection refused or reset, timeouts, server restarting, serialization failures. */
  Transient: 'Transient',
  AuthenticationFailed: 'AuthenticationFailed',
  PermissionDenied: 'PermissionDenied',
  /** A secret reference (env:VAR, file:PATH) could not be resolved on the worker. */
  SecretUnresolved: 'SecretUnresolved',
  /** The target already has an object dbferry would create (a table, a type, a schema). */
  TargetObjectConflict: 'TargetObjectConflict',
  /** The target database is missing and the plan says not to create it. */
  TargetDatabaseMissing: 'TargetDatabaseMissing',
  SourceObjectMissing: 'SourceObjectMissing',
  /** A value or constraint the target refused (type, check, unique, foreign key). */
  DataError: 'DataError',
  /** Preflight found something that blocks the migration. */
  PreflightBlocked: 'PreflightBlocked',
  /** Validation found a table whose rows differ between source and target. */
  ValidationMismatch: 'ValidationMismatch',
  /** The plan asks for something this version cannot do. */
  Unsupported: 'Unsupported',
  /** A source table changed while CDC ran in a way dbferry does not apply by itself. */
  SchemaChanged: 'SchemaChanged',
  /** The source cannot send a change through its change stream (e.g. a value over 1 GB). */
  SourceCannotSend: 'SourceCannotSend',
  /** Cutover is not possible now (writes still arriving, CDC behind): nothing was changed. */
  CutoverRefused: 'CutoverRefused',
  /** Key redesign: child rows whose natural key names no parent (their new reference stays NULL). */
  OrphanRows: 'OrphanRows',
  /** Anything else the database reported. */
  DatabaseError: 'DatabaseError',
  /** AWS refused a request (permissions, quota, a parameter): the message is AWS's own. */
  AwsRequestRefused: 'AwsRequestRefused',
  /** The DMS replication task failed or stopped on an error (LastFailureMessage in the message). */
  DmsTaskFailed: 'DmsTaskFailed',
  /** DMS suspended tables it could not load or apply (Table error); a retry reloads them. */
  DmsTableError: 'DmsTableError',
  /** A DMS endpoint's connection test failed (DMS's message in the failure). */
  DmsEndpointTestFailed: 'DmsEndpointTestFailed',
  /**
   * A loader ran on another worker than its read point's holder, whose snapshots only loaders
   * in its process can join (MySQL): the workflow schedules it again on the holder's queue.
   */
  ReadPointElsewhere: 'ReadPointElsewhere',
} as const;

export type FailureType = (typeof FailureType)[keyof typeof FailureType];

export const NEEDS_PERSON: readonly FailureType[] = [
  FailureType.AuthenticationFailed,
  FailureType.PermissionDenied,
  FailureType.SecretUnresolved,
  FailureType.TargetObjectConflict,
  FailureType.TargetDatabaseMissing,
  FailureType.SourceObjectMissing,
  FailureType.DataError,
  FailureType.PreflightBlocked,
  FailureType.ValidationMismatch,
  FailureType.Unsupported,
  FailureType.SchemaChanged,
  FailureType.SourceCannotSend,
  FailureType.CutoverRefused,
  FailureType.OrphanRows,
  FailureType.AwsRequestRefused,
  FailureType.DmsTaskFailed,
  FailureType.DmsTableError,
  FailureType.DmsEndpointTestFailed,
];

/**
 * `code` of a CDC failure about tables whose changes the source cannot capture (PostgreSQL: no
 * replica identity):
 * the operator may take such a table out of the migration instead (`dbferry skip`).
 */
export const CHANGES_NOT_CAPTURED = 'dbferry:changes-not-captured';

/** Structured details attached to a failure (the first element of ApplicationFailure.details). */
export interface FailureDetails {
  /** `source` or `target`, or the endpoint description (engine/host:port/db), never credentials. */
  endpoint?: string;
  /** `schema.table` where the failure is about one table. */
  table?: string;
  /** SQLSTATE or driver code, when the database gave one. */
  code?: string;
  /** What a person can do about it, in one sentence. */
  hint?: string;
}
