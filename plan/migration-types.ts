/**
 * Data that crosses between the workflow, the activities and the CLI. Pure types: everything
 * here ends up in workflow history or memo, so nothing here may ever hold a secret.
 */
import type { Plan } from './plan-schema';

export type Phase =
  | 'preflight'
  | 'creating-databases'
  | 'creating-tables'
  | 'full-load'
  | 'building-indexes'
  | 'validating'
  | 'cdc'
  | 'cutover'
  | 'completed'
  | 'awaiting-operator'
  | 'aborted'
  | 'failed';

export type StepName =
  | 'preflight'
  | 'create-database'
  | 'create-tables'
  | 'full-load'
  | 'build-indexes'
  | 'dump-restore'
  | 'cdc'
  | 'validate'
  | 'finalize';

export type StepStatus = 'NotRun' | 'Running' | 'Succeeded' | 'Failed' | 'Skipped';

/** Identifies one migration run; activities key what they leave on the target by it. */
export interface MigrationRef {
  name: string;
  /** The workflow's first run id: a new migration under the same name gets a new one. */
  runId: string;
}

export interface ActivityInput {
  plan: Plan;
  migration: MigrationRef;
}

export interface FailureInfo {
  step: StepName;
  type: string;
  message: string;
  table?: string;
  hint?: string;
  /** The database's error code (SQLSTATE) when it gave one, or dbferry's own (`dbferry:…`). */
  code?: string;
  at: string;
  attempts?: number;
}

export interface StepRecord {
  step: StepName;
  status: StepStatus;
  startedAt?: string;
  endedAt?: string;
  /** Times the operator sent the step round again. */
  operatorRetries: number;
  error?: FailureInfo;
  note?: string;
}

export type TableValidation = 'pending' | 'equal' | 'different' | 'skipped';

export interface TableStats {
  name: string;
  fullLoadRows?: string;
  /** See TableLoadResult.converted. */
  converted?: string;
  inserts: number;
  updates: number;
  deletes: number;
  validation: TableValidation;
  sourceRows?: string;
  targetRows?: string;
  loadMs?: number;
}

export type DecisionAction = 'retry' | 'skip' | 'abort';

export interface OperatorDecision {
  action: DecisionAction;
  reason?: string;
  /** Optional guard: the step the operator believes is paused. */
  step?: StepName;
}

export interface DecisionRecord extends OperatorDecision {
  at: string;
  pausedStep: StepName;
  /** A skip that took this table out of the migration (it was dropped on the source). */
  leftOut?: string;
}

export interface MigrationStatus {
  name: string;
  mode: Plan['mode'];
  phase: Phase;
  source?: string;
  target?: string;
  startedAt: string;
  endedAt?: string;
  steps: StepRecord[];
  tables: TableStats[];
  failure?: FailureInfo;
  decisions: DecisionRecord[];
  /** What is left where, when the migration was aborted. */
  leftBehind?: string[];
  /** Tables the operator took out of the migration after they were dropped on the source. */
  leftOut?: { table: string; at: string; reason?: string }[];
  /**
   * Set when `tables` lists only some tables (memo and final report of a large schema, which
   * must stay small in history): how many are left out, and totals over all of them.
   */
  tablesOmitted?: number;
  totals?: TableTotals;
  /** With alerts.webhook: deliveries, and those that failed. */
  alerts?: AlertDelivery;
  /** CDC modes: what CDC holds on the source, where it started, and the cutover, once asked for. */
  cdc?: {
    /** What CDC holds on the source, in the engine's words (e.g. `replication slot x`). */
    sourceObjects?: string[];
    /** Where the applier started (an engine position). */
    startPosition?: string;
    cutover?: CutoverAck & { at: string };
    /** Set while the operator holds CDC apply (`dbferry pause`). */
    paused?: { at: string; reason?: string };
  };
}

export interface TableTotals {
  tables: number;
  /** Tables the full load has finished (absent in statuses of versions before it was counted). */
  loaded?: number;
  fullLoadRows: string;
  equal: number;
  different: number;
  pending: number;
}

export type FindingSeverity = 'blocking' | 'warning' | 'info';

export interface Finding {
  severity: FindingSeverity;
  code: string;
  message: string;
  table?: string;
}

export interface EndpointInfo {
  description: string;
  version: string;
}

export interface PreflightReport {
  source: EndpointInfo;
  target: EndpointInfo;
  findings: Finding[];
  /** The largest tables selected (at most TABLES_LISTED, plan/table-lists.ts). */
  tables: { name: string; estimatedRows: string; estimatedBytes: string }[];
  /** Every table selected: their number and estimated size (absent in results of earlier versions: `tables` was all). */
  selected?: { tables: number; estimatedRows: string; estimatedBytes: string };
  /** The target DDL dbferry would run, for `dbferry check` (its first 256 kB). */
  targetSchema?: string[];
  /** Statements of the target DDL left out of `targetSchema`. */
  targetSchemaOmitted?: number;
}

export interface CreateDatabaseResult {
  database: string;
  created: boolean;
  /** `aws.rds`: the instance, and whether this migration created it. */
  rdsInstance?: { instanceId: string; created: boolean };
}

export interface CreateTablesResult {
  /** At most TABLES_LISTED of the tables created (plan/table-lists.ts). */
  tables: string[];
  /** How many were created (absent in results of earlier versions: `tables` was all). */
  tableCount?: number;
  statements: number;
  /** True when this migration had already created them (a retried step). */
  alreadyCreated: boolean;
}

export interface TableLoadResult {
  table: string;
  rows: string;
  bytes: number;
  /** Chunks the table was loaded in (1: whole). */
  chunks: number;
  /** Copy time, summed over its chunks. */
  ms: number;
  /** Values the source engine had to change on the way, in words (MySQL zero dates written as NULL). */
  converted?: string;
}

/** One read point (snapshot) the load ran under; a new generation starts when its holder died. */
export interface LoadSnapshot {
  generation: number;
  snapshot: string;
  /** The source position the snapshot belongs to (an engine position). */
  position: string;
  at: string;
}

export interface FullLoadResult {
  /** The first snapshot and its position: where CDC would start. */
  snapshot: string;
  position: string;
  /** How the tables' read points were taken, in words, where the engine says more than the snapshot (MySQL). */
  readPoint?: string;
  snapshots: LoadSnapshot[];
  /** The largest tables loaded (at most TABLES_LISTED). */
  tables: TableLoadResult[];
  /** Over every table loaded (absent in results of earlier versions: `tables` was all). */
  totals?: { tables: number; rows: string; bytes: number };
  ms?: number;
}

/** The heartbeat of a full load a managed service runs (AWS DMS): `status` and `watch` show it. */
export interface ManagedLoadProgress {
  step: string;
  /** The service's own word for the task's state (DMS: running, stopped, failed…). */
  status?: string;
  percent?: number;
  tablesLoaded: number;
  tablesTotal: number;
  /** Tables being loaded now, with the rows the service reports so far (at most 50). */
  loading: Array<{ table: string; rows: number }>;
}

/** What planLoad stored on the target: the workflow sees counts, never the plan itself. */
export interface LoadPlanSummary {
  tasks: number;
  units: number;
  chunkedTables: number;
  estimatedBytes: string;
}

/** A loader activity's input: one task of the stored load plan. */
export interface LoadTaskInput extends ActivityInput {
  task: number;
}

/** A table the operator takes out of the migration (`schema.table`, as in the model). */
export interface LeaveOutInput extends ActivityInput {
  table: string;
}

export interface LeaveOutResult {
  table: string;
  /** Whether the target had dbferry's (partial) copy of it, now dropped. */
  droppedOnTarget: boolean;
}

export interface LoadTaskResult {
  task: number;
  /** True when the ledger showed the task done already (a resumed load). */
  alreadyLoaded: boolean;
  units: number;
  rows: string;
  bytes: number;
  generation?: number;
}

/** A slice of the task list, loaded by one child workflow. */
export interface LoadBatchInput extends ActivityInput {
  fromTask: number;
  toTask: number;
}

export interface LoadBatchResult {
  tasks: number;
  alreadyLoaded: number;
  rows: string;
  bytes: number;
}

export interface FinishLoadResult {
  /** Tables emptied to be loaded again (page-range chunks from different snapshots). */
  reloadTables?: string[];
  report?: FullLoadResult;
}

export interface HeldSnapshot {
  generation: number;
  snapshot: string;
  position: string;
}

/** Mode dump-restore: pg_dump of the selected tables inside one snapshot, pg_restore into the target. */
export interface DumpRestoreResult {
  snapshot: string;
  /** Rows per table, counted inside the dump's snapshot (what validation compares against): the largest, at most TABLES_LISTED. */
  tables: { table: string; rows: string }[];
  /** Over every table restored (absent in results of earlier versions: `tables` was all). */
  totals?: { tables: number; rows: string };
  /** Size of the dump directory (compressed). */
  bytes: number;
  /** pg_dump -j and pg_restore -j (load.parallel). */
  jobs: number;
  dumpMs: number;
  restoreMs: number;
  ms: number;
}

export interface BuildResult {
  primaryKeys: number;
  uniques: number;
  indexes: number;
  foreignKeys: number;
  sequences: number;
  ms: number;
}

export interface TableValidationResult {
  table: string;
  sourceRows: string;
  targetRows: string;
  checksum: 'equal' | 'different' | 'not-checked';
  equal: boolean;
  /**
   * A parent (partitioned, or with inheritance children): the table as a query reads it, with
   * every descendant's rows. `equal` is false when this differs, even if its own rows match.
   */
  withDescendants?: { sourceRows: string; targetRows: string; checksum: 'equal' | 'different' | 'not-checked' };
  /**
   * Key redesign: each new reference column, with its rows whose link disagrees with their
   * natural key (`wrong`: any makes the table different) and its rows whose natural key names
   * no parent (`orphans`: NULL, as the source's data has it).
   */
  references?: { column: string; wrong: string; orphans: string }[];
  /**
   * Columns a table-mapping rule adds (`add-column` with an expression), with the rows whose
   * value is not what the expression gives for them (any makes the table different). An
   * expression that reads the clock is not checked.
   */
  computed?: { column: string; wrong: string }[];
}

export interface ValidateResult {
  /** The differing tables first, then the others (at most TABLES_LISTED); every table's result is in `_dbferry.table_validations` on the target. */
  tables: TableValidationResult[];
  /** Over every table validated (absent in results of earlier versions: `tables` was all). */
  totals?: { tables: number; equal: number; different: number };
  ms: number;
}

/** Applied changes of one table since CDC started (counted in the same target transactions). */
export interface CdcTableStats {
  table: string;
  inserts: number;
  updates: number;
  deletes: number;
  truncates: number;
}

/** The CDC activity's heartbeat: where the applier stands (`dbferry status` reads it). */
export interface CdcProgress {
  /** End of the last source transaction committed on the target (an engine position). */
  appliedPosition: string;
  /** The source's newest position as last reported by it. */
  sourcePosition: string;
  lagBytes: string;
  lagSeconds: number;
  /** Nothing received is waiting to be applied. */
  caughtUp: boolean;
  transactions: number;
  changes: number;
  /** Large source transactions being applied while they run (not committed on the source yet): how many, and their changes so far. */
  inProgress?: { transactions: number; changes: number };
  /** Per table, busiest first (at most a few hundred). */
  tables: CdcTableStats[];
  at: string;
}

export interface CdcPrepareResult {
  /** What CDC holds on the source, in the engine's words (e.g. `replication slot x`). */
  sourceObjects: string[];
  /** Where the applier starts (or resumes): an engine position. */
  startPosition: string;
}

export interface CdcResult {
  /** Why the applier stopped: the cutover marker was applied. */
  stoppedAt: 'cutover';
  appliedPosition: string;
  markerPosition: string;
  transactions: number;
  changes: number;
  /** The busiest tables (at most TABLES_LISTED); the counts of every table are in `_dbferry` on the target. */
  tables: CdcTableStats[];
}

/** What `dbferry cutover` answers once writes are found stopped and the marker is written. */
export interface CutoverAck {
  markerPosition: string;
  quietSeconds: number;
}

export interface FinalizeResult {
  sequences: number;
  /** What was removed from the source (and what was kept, with the reason). */
  cleanup: CleanupResult;
}

/** What cleanup removed from the source (and what it left, with the reason). */
export interface CleanupResult {
  dropped: string[];
  kept: string[];
}

export interface MigrationReport {
  status: MigrationStatus;
  cdc?: CdcResult;
  finalize?: FinalizeResult;
  load?: FullLoadResult;
  dumpRestore?: DumpRestoreResult;
  build?: BuildResult;
  validation?: ValidateResult;
}

export type AlertKind = 'paused' | 'resumed' | 'failed' | 'completed' | 'aborted' | 'cdc-lag' | 'slot-wal' | 'check';

/** What goes to the webhook: `text` for Slack-compatible receivers, the fields for the others. */
export interface Alert {
  kind: AlertKind;
  text: string;
  step?: StepName;
  table?: string;
  /** A key or source position the alert is about. */
  position?: string;
  cause?: string;
  /** The command that resolves it. */
  command?: string;
  at: string;
}

/** Alerts that could not be delivered (after retries): shown by `dbferry status`. */
export interface AlertDelivery {
  sent: number;
  missed: Array<{ kind: AlertKind; at: string; error: string }>;
}

/** The final result of the `dbferry check` workflow. */
export type CheckResult = PreflightReport;
