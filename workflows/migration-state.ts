/**
 * The migration's state machine, kept free of Temporal so it can be unit-tested: the workflow
 * feeds it events (step started, failed, operator decided) and publishes what it reports.
 */
import type {
  AlertKind,
  CdcTableStats,
  CutoverAck,
  DecisionRecord,
  FailureInfo,
  MigrationStatus,
  OperatorDecision,
  Phase,
  StepName,
  StepRecord,
  TableStats,
  TableValidationResult,
  TableLoadResult,
  TableTotals,
  CdcPrepareResult,
} from '../plan/migration-types';
import { CHANGES_NOT_CAPTURED } from '../plan/failure-types';
import { tableTotals } from './reporting';

export const STEP_PHASE: Record<StepName, Phase> = {
  preflight: 'preflight',
  'create-database': 'creating-databases',
  'create-tables': 'creating-tables',
  'full-load': 'full-load',
  'build-indexes': 'building-indexes',
  'dump-restore': 'full-load',
  cdc: 'cdc',
  validate: 'validating',
  finalize: 'cutover',
};

/** Why a step may not be skipped: skipping it would lose data or break every later step. */
const NOT_SKIPPABLE: Partial<Record<StepName, string>> = {
  'create-database': 'every later step needs the target database',
  'create-tables': 'the full load needs the target tables; skipping would lose every row',
  'full-load': "skipping the load would leave the target without the source's rows",
  'dump-restore': "skipping the restore would leave the target without the source's tables and rows",
  cdc: 'skipping CDC would lose every change since the load; abort instead',
};

/**
 * Steps after the model is recorded, where a table dropped on the source can be taken out of
 * the migration: `skip` then means "leave the table out" and the step runs again without it.
 */
const LEAVE_OUT_STEPS: readonly StepName[] = ['full-load', 'build-indexes', 'validate'];

/**
 * Why a paused step's table could be taken out of the migration: gone from the source ("relation
 * does not exist" while reading it), or, for CDC, without a replica identity (its changes
 * cannot be captured).
 */
function leaveOutReason(f: FailureInfo): 'gone' | 'uncapturable' | undefined {
  if (!f.table) return undefined;
  if (f.type === 'SourceObjectMissing' && f.code === '42P01' && LEAVE_OUT_STEPS.includes(f.step)) return 'gone';
  if (f.step === 'cdc' && f.code === CHANGES_NOT_CAPTURED) return 'uncapturable';
  return undefined;
}

export class DecisionRefused extends Error {
  override name = 'DecisionRefused';
}

export class MigrationState {
  readonly #status: MigrationStatus;
  #pending?: OperatorDecision;
  #byName?: Map<string, TableStats>;
  /**
   * Counts over every table where the steps' results name only some (a large schema:
   * plan/table-lists.ts); `tables` then holds the named ones.
   */
  #counted: { tables?: number; loaded?: number; fullLoadRows?: string; equal?: number; different?: number; validationSkipped?: boolean } = {};

  constructor(init: { name: string; mode: MigrationStatus['mode']; steps: StepName[]; now: string }) {
    this.#status = {
      name: init.name,
      mode: init.mode,
      phase: STEP_PHASE[init.steps[0] ?? 'preflight'],
      startedAt: init.now,
      steps: init.steps.map((step) => ({ step, status: 'NotRun', operatorRetries: 0 })),
      tables: [],
      decisions: [],
    };
  }

  get phase(): Phase {
    return this.#status.phase;
  }

  get pausedStep(): StepName | undefined {
    return this.#status.phase === 'awaiting-operator' ? this.#status.failure?.step : undefined;
  }

  /** A deep copy: handlers and memo must never hand out the live object. */
  snapshot(): MigrationStatus {
    const s = JSON.parse(JSON.stringify(this.#status)) as MigrationStatus;
    const all = this.#counted.tables;
    if (all === undefined) return s;
    // The steps named different tables: together they may be as many as there are, yet no
    // step gave figures for all of them, so the totals are the counted ones.
    const omitted = all - s.tables.length;
    return { ...s, ...(omitted > 0 ? { tablesOmitted: omitted } : {}), totals: this.#totals(all, s.tables) };
  }

  /** Totals over all `tables` tables, from the steps' counts where they gave them, else from those named. */
  #totals(tables: number, named: TableStats[]): TableTotals {
    const own = tableTotals(named);
    const c = this.#counted;
    const equal = c.equal ?? own.equal;
    const different = c.different ?? own.different;
    return { tables, loaded: c.loaded ?? own.loaded, fullLoadRows: c.fullLoadRows ?? own.fullLoadRows, equal, different, pending: c.validationSkipped ? 0 : Math.max(0, tables - equal - different) };
  }

  setEndpoints(source: string, target: string): void {
    this.#status.source = source;
    this.#status.target = target;
  }

  stepStarted(step: StepName, now: string): void {
    const rec = this.#step(step);
    rec.status = 'Running';
    rec.startedAt ??= now;
    rec.error = undefined;
    this.#status.phase = STEP_PHASE[step];
    this.#status.failure = undefined;
  }

  stepSucceeded(step: StepName, now: string, note?: string): void {
    const rec = this.#step(step);
    rec.status = 'Succeeded';
    rec.endedAt = now;
    if (note) rec.note = note;
  }

  /** The table the paused step found dropped on the source, which `skip` would leave out. */
  get leaveOutCandidate(): string | undefined {
    const f = this.pausedStep ? this.#status.failure : undefined;
    return f && leaveOutReason(f) ? f.table : undefined;
  }

  /** The step failed after its retries: the migration waits for a person. */
  stepFailed(failure: FailureInfo): void {
    const reason = leaveOutReason(failure);
    if (reason) {
      const name = this.#status.name;
      const hint =
        reason === 'gone'
          ? `if ${failure.table} was dropped on purpose, \`dbferry skip ${name}\` takes it out of this migration (its copy on the target is dropped) ` +
            `and ${failure.step} goes on with the other tables; if not, restore it and \`dbferry retry ${name}\``
          : `${failure.hint ?? ''}; or \`dbferry skip ${name}\` takes ${failure.table} out of this migration (its changes cannot be captured; ` +
            `its copy on the target is dropped) and CDC goes on with the other tables`;
      failure = { ...failure, hint };
    }
    const rec = this.#step(failure.step);
    rec.status = 'Failed';
    rec.error = failure;
    rec.endedAt = failure.at;
    this.#status.failure = failure;
    this.#status.phase = 'awaiting-operator';
    this.#pending = undefined;
  }

  /** CDC runs until cutover or abort: the one running step an operator may end at any time. */
  get abortableRunningStep(): StepName | undefined {
    return this.#status.phase === 'cdc' && this.#step('cdc').status === 'Running' && !this.#status.cdc?.cutover ? 'cdc' : undefined;
  }

  /** Throws DecisionRefused with the reason when the decision cannot be taken now. Synchronous: it backs an Update validator. */
  validateDecision(d: OperatorDecision): void {
    const running = this.abortableRunningStep;
    if (!this.pausedStep && running && d.action === 'abort' && (!d.step || d.step === running)) {
      if (this.#pending) throw new DecisionRefused(`a decision (${this.#pending.action}) was already taken for ${running}`);
      return;
    }
    const paused = this.pausedStep;
    if (!paused) {
      throw new DecisionRefused(
        `migration ${this.#status.name} is not waiting for an operator (phase ${this.#status.phase})${running ? `; while CDC runs, only abort is possible` : ''}`,
      );
    }
    if (!['retry', 'skip', 'abort'].includes(d.action)) {
      throw new DecisionRefused(`unknown action ${JSON.stringify(d.action)}: expected retry, skip or abort`);
    }
    if (d.step && d.step !== paused) {
      throw new DecisionRefused(`migration ${this.#status.name} is paused on ${paused}, not on ${d.step}`);
    }
    if (this.#pending) {
      throw new DecisionRefused(`a decision (${this.#pending.action}) was already taken for ${paused}`);
    }
    const why = NOT_SKIPPABLE[paused];
    if (d.action === 'skip' && why && !this.leaveOutCandidate) throw new DecisionRefused(`${paused} cannot be skipped: ${why}`);
  }

  decide(d: OperatorDecision, now: string): string {
    this.validateDecision(d);
    const paused = (this.pausedStep ?? this.abortableRunningStep) as StepName;
    const leftOut = d.action === 'skip' ? this.leaveOutCandidate : undefined;
    this.#pending = d;
    const rec: DecisionRecord = { ...d, at: now, pausedStep: paused, ...(leftOut ? { leftOut } : {}) };
    this.#status.decisions.push(rec);
    if (leftOut) return `skip accepted: ${leftOut} is taken out of the migration (its copy on the target is dropped) and ${paused} runs again without it`;
    return `${d.action} accepted for ${paused}`;
  }

  /**
   * The decision the workflow is waiting for; consumed once. A skip that leaves a table out
   * comes back with `leaveOut`: the workflow removes the table, then runs the step again.
   */
  takeDecision(now?: string): (OperatorDecision & { leaveOut?: string }) | undefined {
    const d = this.#pending;
    if (!d) return undefined;
    const leaveOut = d.action === 'skip' ? this.leaveOutCandidate : undefined;
    this.#pending = undefined;
    const rec = this.#step(this.#status.failure?.step ?? 'cdc');
    if (leaveOut) {
      (this.#status.leftOut ??= []).push({ table: leaveOut, at: now ?? this.#status.failure?.at ?? '', ...(d.reason ? { reason: d.reason } : {}) });
      const gone = this.#status.tables.find((t) => t.name === leaveOut);
      this.#status.tables = this.#status.tables.filter((t) => t.name !== leaveOut);
      if (this.#counted.tables !== undefined) {
        // Its rows leave the totals when they are known (named by the load); else they stay counted.
        const c = this.#counted;
        c.tables = c.tables! - 1;
        if (c.loaded !== undefined && gone?.fullLoadRows !== undefined) c.loaded--;
        if (c.fullLoadRows !== undefined && gone?.fullLoadRows !== undefined) c.fullLoadRows = (BigInt(c.fullLoadRows) - BigInt(gone.fullLoadRows)).toString();
        if (gone?.validation === 'equal' && c.equal !== undefined) c.equal--;
        if (gone?.validation === 'different' && c.different !== undefined) c.different--;
      }
      this.#byName = undefined;
      rec.note = `${leaveOut} taken out of the migration by the operator${d.reason ? `: ${d.reason}` : ''}`;
      return { ...d, leaveOut };
    }
    if (d.action === 'retry') rec.operatorRetries++;
    if (d.action === 'skip') {
      rec.status = 'Skipped';
      rec.note = d.reason ? `skipped by operator: ${d.reason}` : 'skipped by operator';
      this.#status.failure = undefined;
    }
    return d;
  }

  hasDecision(): boolean {
    return this.#pending !== undefined;
  }

  aborted(now: string, leftBehind: string[]): void {
    this.#status.phase = 'aborted';
    this.#status.endedAt = now;
    this.#status.leftBehind = leftBehind;
  }

  failed(now: string, failure: FailureInfo): void {
    this.#status.phase = 'failed';
    this.#status.endedAt = now;
    this.#status.failure = failure;
  }

  completed(now: string): void {
    this.#status.phase = 'completed';
    this.#status.endedAt = now;
    this.#status.failure = undefined;
  }

  cdcPrepared(c: CdcPrepareResult): void {
    this.#status.cdc = { ...this.#status.cdc, sourceObjects: c.sourceObjects, startPosition: c.startPosition };
  }

  /** Synchronous: backs the cutover Update's validator. */
  validateCutover(): void {
    const name = this.#status.name;
    if (this.#status.mode !== 'full-load-and-cdc' && this.#status.mode !== 'cdc') {
      throw new DecisionRefused(`migration ${name} is mode ${this.#status.mode}: there is no CDC to cut over`);
    }
    if (this.#status.cdc?.cutover) throw new DecisionRefused(`cutover of ${name} is already under way (marker at ${this.#status.cdc.cutover.markerPosition})`);
    if (this.#cutoverChecking) throw new DecisionRefused(`a cutover of ${name} is being checked right now`);
    if (this.pausedStep) throw new DecisionRefused(`migration ${name} is waiting for an operator on ${this.pausedStep}: resolve that first`);
    if (this.#pauseWanted) throw new DecisionRefused(`CDC of ${name} is paused: dbferry resume ${name} first`);
    if (this.#status.phase !== 'cdc' || this.#step('cdc').status !== 'Running') {
      throw new DecisionRefused(`migration ${name} is in phase ${this.#status.phase}: cutover is possible once CDC runs`);
    }
  }

  #pauseWanted = false;

  get cdcPauseWanted(): boolean {
    return this.#pauseWanted;
  }

  /** Synchronous: backs the pause Update's validator. */
  validatePause(): void {
    const name = this.#status.name;
    if (this.#status.phase !== 'cdc' || this.#step('cdc').status !== 'Running') {
      throw new DecisionRefused(`migration ${name} is in phase ${this.#status.phase}: only running CDC can be paused`);
    }
    if (this.#status.cdc?.cutover) throw new DecisionRefused(`cutover of ${name} is under way: CDC must drain, not pause`);
    if (this.#cutoverChecking) throw new DecisionRefused(`a cutover of ${name} is being checked right now: CDC must drain, not pause`);
    if (this.#pauseWanted) throw new DecisionRefused(`CDC of ${name} is already paused`);
  }

  validateResume(): void {
    if (!this.#pauseWanted) throw new DecisionRefused(`CDC of ${this.#status.name} is not paused`);
  }

  pauseCdc(now: string, reason?: string): void {
    this.#pauseWanted = true;
    this.#status.cdc = { ...this.#status.cdc, paused: { at: now, ...(reason ? { reason } : {}) } };
  }

  resumeCdc(): void {
    this.#pauseWanted = false;
    if (this.#status.cdc) delete this.#status.cdc.paused;
  }

  #cutoverChecking = false;
  cutoverChecking(on: boolean): void {
    this.#cutoverChecking = on;
  }

  cutoverBegun(ack: CutoverAck, now: string): void {
    this.#status.cdc = { ...this.#status.cdc, cutover: { ...ack, at: now } };
  }

  alertSent(): void {
    this.#status.alerts = { sent: (this.#status.alerts?.sent ?? 0) + 1, missed: this.#status.alerts?.missed ?? [] };
  }

  /** An alert that could not be delivered: kept (the last 20) for `dbferry status`. */
  alertMissed(kind: AlertKind, at: string, error: string): void {
    const missed = [...(this.#status.alerts?.missed ?? []), { kind, at, error }].slice(-20);
    this.#status.alerts = { sent: this.#status.alerts?.sent ?? 0, missed };
  }

  recordCdc(tables: CdcTableStats[]): void {
    for (const r of tables) {
      const t = this.#table(r.table);
      t.inserts = r.inserts;
      t.updates = r.updates;
      t.deletes = r.deletes;
    }
  }

  /** The tables of the migration: `names`, or some of them when `count` says there are more. */
  setTables(names: string[], count?: number): void {
    const known = new Map(this.#status.tables.map((t) => [t.name, t]));
    this.#status.tables = names.map((name) => known.get(name) ?? emptyStats(name));
    this.#byName = undefined;
    this.#counted = count !== undefined && count > names.length ? { ...this.#counted, tables: count } : {};
  }

  /** Rows loaded, of every table or (with `totals`) of those named, with the totals over all. */
  recordLoad(results: Array<Pick<TableLoadResult, 'table' | 'rows'> & Partial<TableLoadResult>>, totals?: { tables: number; rows: string }): void {
    for (const r of results) {
      const t = this.#table(r.table);
      t.fullLoadRows = r.rows;
      if (r.ms !== undefined) t.loadMs = r.ms;
      if (r.converted) t.converted = r.converted;
      t.validation = 'pending';
    }
    if (totals && totals.tables > results.length) this.#counted = { ...this.#counted, tables: totals.tables, loaded: totals.tables, fullLoadRows: totals.rows };
  }

  recordValidation(results: TableValidationResult[], totals?: { tables: number; equal: number; different: number }): void {
    for (const r of results) {
      const t = this.#table(r.table);
      t.sourceRows = r.sourceRows;
      t.targetRows = r.targetRows;
      t.validation = r.equal ? 'equal' : 'different';
    }
    if (totals && totals.tables > results.length) {
      this.#counted = { ...this.#counted, tables: totals.tables, equal: totals.equal, different: totals.different };
      // The result names every differing table first: when it names all of them, the tables it
      // leaves out are equal; otherwise what an earlier validation said of them is stale.
      const named = new Set(results.map((r) => r.table));
      const allDifferingNamed = results.filter((r) => !r.equal).length === totals.different;
      for (const t of this.#status.tables) {
        if (named.has(t.name)) continue;
        if (allDifferingNamed) t.validation = 'equal';
        else if (t.validation === 'different' || t.validation === 'equal') t.validation = 'pending';
      }
    }
  }

  markValidationSkipped(): void {
    for (const t of this.#status.tables) if (t.validation === 'pending') t.validation = 'skipped';
    if (this.#counted.tables !== undefined) this.#counted.validationSkipped = true;
  }

  #step(step: StepName): StepRecord {
    const rec = this.#status.steps.find((s) => s.step === step);
    if (!rec) throw new Error(`unknown step ${step}`);
    return rec;
  }

  // By name: a 10,000-table schema would make a linear lookup per recorded table quadratic.
  #table(name: string): TableStats {
    if (this.#byName?.size !== this.#status.tables.length) this.#byName = new Map(this.#status.tables.map((x) => [x.name, x]));
    let t = this.#byName.get(name);
    if (!t) {
      t = emptyStats(name);
      this.#status.tables.push(t);
      this.#byName.set(name, t);
    }
    return t;
  }
}

function emptyStats(name: string): TableStats {
  return { name, inserts: 0, updates: 0, deletes: 0, validation: 'pending' };
}
