import type { FailureInfo, StepName } from '../../plan/migration-types';
import { DecisionRefused, MigrationState, STEP_PHASE } from '../../workflows/migration-state';

const STEPS: StepName[] = ['preflight', 'create-database', 'create-tables', 'full-load', 'build-indexes', 'validate'];
const T0 = '2024-01-01T00:00:00.000Z';
const T1 = '2024-01-01T00:01:00.000Z';
const T2 = '2024-01-01T00:02:00.000Z';

function fresh(): MigrationState {
  return new MigrationState({ name: 'shop', mode: 'full-load', steps: STEPS, now: T0 });
}

function failure(step: StepName, extra: Partial<FailureInfo> = {}): FailureInfo {
  return { step, type: 'DatabaseError', message: `${step} broke`, at: T1, ...extra };
}

/** A state paused on `step` (earlier steps succeeded). */
function pausedOn(step: StepName): MigrationState {
  const s = fresh();
  for (const prev of STEPS.slice(0, STEPS.indexOf(step))) {
    s.stepStarted(prev, T0);
    s.stepSucceeded(prev, T0);
  }
  s.stepStarted(step, T0);
  s.stepFailed(failure(step));
  return s;
}

function stepRec(s: MigrationState, step: StepName) {
  return s.snapshot().steps.find((x) => x.step === step)!;
}

function refusal(fn: () => void): DecisionRefused {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DecisionRefused);
    return err as DecisionRefused;
  }
  throw new Error('expected a DecisionRefused');
}

describe('MigrationState: construction and step lifecycle', () => {
  it('starts in the first step phase with every step NotRun and no tables', () => {
    const snap = fresh().snapshot();
    expect(snap.name).toBe('shop');
    expect(snap.mode).toBe('full-load');
    expect(snap.phase).toBe('preflight');
    expect(snap.startedAt).toBe(T0);
    expect(snap.steps.map((s) => s.step)).toEqual(STEPS);
    expect(snap.steps.every((s) => s.status === 'NotRun' && s.operatorRetries === 0)).toBe(true);
    expect(snap.tables).toEqual([]);
    expect(snap.decisions).toEqual([]);
    expect(snap.failure).toBeUndefined();
  });

  it('stepStarted sets Running, the step phase and startedAt; stepSucceeded records the end and note', () => {
    const s = fresh();
    s.stepStarted('create-tables', T1);
    expect(s.phase).toBe(STEP_PHASE['create-tables']);
    expect(s.phase).toBe('creating-tables');
    expect(stepRec(s, 'create-tables')).toMatchObject({ status: 'Running', startedAt: T1 });

    s.stepSucceeded('create-tables', T2, '12 tables');
    expect(stepRec(s, 'create-tables')).toMatchObject({ status: 'Succeeded', startedAt: T1, endedAt: T2, note: '12 tables' });
  });

  it('each step maps to its phase', () => {
    const s = fresh();
    const phases = STEPS.map((step) => {
      s.stepStarted(step, T0);
      return s.phase;
    });
    expect(phases).toEqual(['preflight', 'creating-databases', 'creating-tables', 'full-load', 'building-indexes', 'validating']);
  });

  it('a restarted step keeps its first startedAt and drops the previous error', () => {
    const s = pausedOn('full-load');
    expect(stepRec(s, 'full-load').error).toBeDefined();
    s.stepStarted('full-load', T2);
    const rec = stepRec(s, 'full-load');
    expect(rec.status).toBe('Running');
    expect(rec.startedAt).toBe(T0);
    expect(rec.error).toBeUndefined();
    expect(s.snapshot().failure).toBeUndefined();
    expect(s.phase).toBe('full-load');
  });

  it('throws on a step it does not know', () => {
    expect(() => fresh().stepStarted('cdc' as StepName, T0)).toThrow(/unknown step cdc/);
  });

  it('completed / failed / aborted end the migration', () => {
    const c = pausedOn('validate');
    c.completed(T2);
    expect(c.snapshot()).toMatchObject({ phase: 'completed', endedAt: T2 });
    expect(c.snapshot().failure).toBeUndefined();

    const f = fresh();
    const fi = failure('preflight', { type: 'Boom' });
    f.failed(T2, fi);
    expect(f.snapshot()).toMatchObject({ phase: 'failed', endedAt: T2, failure: fi });

    const a = pausedOn('full-load');
    a.aborted(T2, ['left here']);
    expect(a.snapshot()).toMatchObject({ phase: 'aborted', endedAt: T2, leftBehind: ['left here'] });
    expect(a.pausedStep).toBeUndefined();
  });
});

describe('MigrationState: stepFailed', () => {
  it('puts the migration in awaiting-operator with the failure on the step and the status', () => {
    const s = fresh();
    s.stepStarted('full-load', T0);
    const f = failure('full-load', { type: 'DataError', table: 'public.orders', hint: 'fix it' });
    s.stepFailed(f);
    const snap = s.snapshot();
    expect(snap.phase).toBe('awaiting-operator');
    expect(s.phase).toBe('awaiting-operator');
    expect(s.pausedStep).toBe('full-load');
    expect(snap.failure).toEqual(f);
    expect(stepRec(s, 'full-load')).toMatchObject({ status: 'Failed', error: f, endedAt: T1 });
    expect(s.hasDecision()).toBe(false);
  });

  it('pausedStep is undefined while running', () => {
    const s = fresh();
    s.stepStarted('preflight', T0);
    expect(s.pausedStep).toBeUndefined();
  });
});

describe('MigrationState: validateDecision refusals', () => {
  it('refuses any decision when not paused, naming the phase', () => {
    const s = fresh();
    s.stepStarted('full-load', T0);
    const e = refusal(() => s.validateDecision({ action: 'retry' }));
    expect(e.message).toMatch(/not waiting for an operator/);
    expect(e.message).toContain('full-load');
    expect(e.name).toBe('DecisionRefused');
  });

  it('refuses after completion', () => {
    const s = pausedOn('validate');
    s.completed(T2);
    expect(() => s.validateDecision({ action: 'abort' })).toThrow(DecisionRefused);
  });

  it('refuses an unknown action', () => {
    const s = pausedOn('preflight');
    const e = refusal(() => s.validateDecision({ action: 'explode' as never }));
    expect(e.message).toMatch(/unknown action "explode"/);
  });

  it('refuses a step guard that names another step', () => {
    const s = pausedOn('build-indexes');
    const e = refusal(() => s.validateDecision({ action: 'retry', step: 'full-load' }));
    expect(e.message).toContain('paused on build-indexes, not on full-load');
  });

  it('accepts a step guard that names the paused step', () => {
    const s = pausedOn('build-indexes');
    expect(() => s.validateDecision({ action: 'retry', step: 'build-indexes' })).not.toThrow();
  });

  it('refuses a second decision before the first is taken', () => {
    const s = pausedOn('preflight');
    s.decide({ action: 'retry' }, T2);
    const e = refusal(() => s.validateDecision({ action: 'abort' }));
    expect(e.message).toContain('already taken');
    expect(e.message).toContain('retry');
    expect(() => s.decide({ action: 'skip' }, T2)).toThrow(DecisionRefused);
    expect(s.snapshot().decisions).toHaveLength(1);
  });

  it.each([
    ['create-database', /every later step needs the target database/],
    ['create-tables', /would lose every row/],
    ['full-load', /without the source's rows/],
  ] as const)('refuses skip for %s with the reason', (step, reason) => {
    const s = pausedOn(step);
    const e = refusal(() => s.validateDecision({ action: 'skip' }));
    expect(e.message).toContain(`${step} cannot be skipped`);
    expect(e.message).toMatch(reason);
    // retry and abort stay possible on the same step
    expect(() => s.validateDecision({ action: 'retry' })).not.toThrow();
    expect(() => s.validateDecision({ action: 'abort' })).not.toThrow();
  });

  it.each(['preflight', 'build-indexes', 'validate'] as const)('allows skip for %s', (step) => {
    const s = pausedOn(step);
    expect(() => s.validateDecision({ action: 'skip' })).not.toThrow();
    expect(s.decide({ action: 'skip' }, T2)).toBe(`skip accepted for ${step}`);
  });

  it('validateDecision changes nothing', () => {
    const s = pausedOn('validate');
    const before = s.snapshot();
    s.validateDecision({ action: 'skip' });
    expect(s.snapshot()).toEqual(before);
    expect(s.hasDecision()).toBe(false);
  });
});

describe('MigrationState: decide and takeDecision', () => {
  it('retry: records the decision, increments operatorRetries once taken', () => {
    const s = pausedOn('full-load');
    const ack = s.decide({ action: 'retry', reason: 'network fixed' }, T2);
    expect(ack).toBe('retry accepted for full-load');
    expect(s.hasDecision()).toBe(true);
    expect(s.snapshot().decisions).toEqual([{ action: 'retry', reason: 'network fixed', at: T2, pausedStep: 'full-load' }]);
    expect(stepRec(s, 'full-load').operatorRetries).toBe(0);

    const d = s.takeDecision();
    expect(d).toEqual({ action: 'retry', reason: 'network fixed' });
    expect(s.hasDecision()).toBe(false);
    expect(stepRec(s, 'full-load').operatorRetries).toBe(1);
    expect(s.takeDecision()).toBeUndefined();
    expect(stepRec(s, 'full-load').operatorRetries).toBe(1);
  });

  it('a second failure after a retry pauses again and another retry counts twice', () => {
    const s = pausedOn('build-indexes');
    s.decide({ action: 'retry' }, T2);
    s.takeDecision();
    s.stepStarted('build-indexes', T2);
    s.stepFailed(failure('build-indexes', { message: 'again' }));
    expect(s.pausedStep).toBe('build-indexes');
    expect(s.snapshot().failure?.message).toBe('again');
    s.decide({ action: 'retry' }, T2);
    s.takeDecision();
    expect(stepRec(s, 'build-indexes').operatorRetries).toBe(2);
    expect(s.snapshot().decisions).toHaveLength(2);
  });

  it('skip: marks the step Skipped with the reason and clears the failure', () => {
    const s = pausedOn('validate');
    s.decide({ action: 'skip', reason: 'checked by hand' }, T2);
    const d = s.takeDecision();
    expect(d?.action).toBe('skip');
    const rec = stepRec(s, 'validate');
    expect(rec.status).toBe('Skipped');
    expect(rec.note).toBe('skipped by operator: checked by hand');
    expect(rec.operatorRetries).toBe(0);
    expect(s.snapshot().failure).toBeUndefined();
    expect(s.pausedStep).toBeUndefined();
  });

  it('skip without a reason gets a plain note', () => {
    const s = pausedOn('preflight');
    s.decide({ action: 'skip' }, T2);
    s.takeDecision();
    expect(stepRec(s, 'preflight').note).toBe('skipped by operator');
  });

  it('abort: is returned as is, recorded, and does not touch the step', () => {
    const s = pausedOn('create-tables');
    expect(s.decide({ action: 'abort', reason: 'wrong target' }, T2)).toBe('abort accepted for create-tables');
    const d = s.takeDecision();
    expect(d).toEqual({ action: 'abort', reason: 'wrong target' });
    expect(stepRec(s, 'create-tables')).toMatchObject({ status: 'Failed', operatorRetries: 0 });
    expect(s.snapshot().decisions[0]).toMatchObject({ action: 'abort', pausedStep: 'create-tables', at: T2 });
  });

  it('decide refuses what validateDecision refuses and records nothing', () => {
    const s = pausedOn('full-load');
    expect(() => s.decide({ action: 'skip' }, T2)).toThrow(/full-load cannot be skipped/);
    expect(s.hasDecision()).toBe(false);
    expect(s.snapshot().decisions).toEqual([]);
  });

  it('a new failure drops a pending, untaken decision', () => {
    const s = pausedOn('preflight');
    s.decide({ action: 'retry' }, T2);
    s.stepFailed(failure('preflight'));
    expect(s.hasDecision()).toBe(false);
    expect(s.takeDecision()).toBeUndefined();
  });
});

describe('MigrationState: snapshot', () => {
  it('returns a deep copy: mutating it does not change the state', () => {
    const s = pausedOn('full-load');
    s.setTables(['public.a']);
    const snap = s.snapshot();
    snap.phase = 'completed';
    snap.name = 'other';
    snap.steps[0]!.status = 'Failed';
    snap.steps.push({ step: 'validate', status: 'NotRun', operatorRetries: 0 });
    snap.tables[0]!.inserts = 99;
    snap.failure!.message = 'changed';
    snap.decisions.push({ action: 'abort', at: T2, pausedStep: 'full-load' });

    const again = s.snapshot();
    expect(again.phase).toBe('awaiting-operator');
    expect(again.name).toBe('shop');
    expect(again.steps[0]!.status).toBe('Succeeded');
    expect(again.steps).toHaveLength(STEPS.length);
    expect(again.tables[0]!.inserts).toBe(0);
    expect(again.failure!.message).toBe('full-load broke');
    expect(again.decisions).toEqual([]);
    expect(s.pausedStep).toBe('full-load');
  });

  it('carries endpoints set by setEndpoints', () => {
    const s = fresh();
    s.setEndpoints('source postgres/a:5432/x', 'target postgres/b:5432/y');
    expect(s.snapshot()).toMatchObject({ source: 'source postgres/a:5432/x', target: 'target postgres/b:5432/y' });
  });
});

describe('MigrationState: tables', () => {
  it('setTables creates empty stats in the given order', () => {
    const s = fresh();
    s.setTables(['public.b', 'public.a']);
    expect(s.snapshot().tables).toEqual([
      { name: 'public.b', inserts: 0, updates: 0, deletes: 0, validation: 'pending' },
      { name: 'public.a', inserts: 0, updates: 0, deletes: 0, validation: 'pending' },
    ]);
  });

  it('setTables keeps the stats of tables it already knows and drops the others', () => {
    const s = fresh();
    s.setTables(['public.a', 'public.b']);
    s.recordLoad([{ table: 'public.a', rows: '10', bytes: 100, ms: 5, chunks: 1 }]);
    s.setTables(['public.c', 'public.a']);
    const tables = s.snapshot().tables;
    expect(tables.map((t) => t.name)).toEqual(['public.c', 'public.a']);
    expect(tables[1]).toMatchObject({ name: 'public.a', fullLoadRows: '10', loadMs: 5 });
    expect(tables[0]!.fullLoadRows).toBeUndefined();
  });

  it('recordLoad sets rows and time, resets validation to pending, and adds unknown tables', () => {
    const s = fresh();
    s.setTables(['public.a']);
    s.recordValidation([{ table: 'public.a', sourceRows: '1', targetRows: '1', checksum: 'equal', equal: true }]);
    s.recordLoad([
      { table: 'public.a', rows: '12345678901234567890', bytes: 1, ms: 7, chunks: 1 },
      { table: 'public.new', rows: '3', bytes: 1, ms: 2, chunks: 1 },
    ]);
    const t = s.snapshot().tables;
    expect(t).toHaveLength(2);
    expect(t[0]).toMatchObject({ name: 'public.a', fullLoadRows: '12345678901234567890', loadMs: 7, validation: 'pending' });
    expect(t[1]).toMatchObject({ name: 'public.new', fullLoadRows: '3', loadMs: 2, validation: 'pending', inserts: 0 });
  });

  it('recordValidation marks equal and different with the counts', () => {
    const s = fresh();
    s.setTables(['public.a', 'public.b']);
    s.recordValidation([
      { table: 'public.a', sourceRows: '5', targetRows: '5', checksum: 'equal', equal: true },
      { table: 'public.b', sourceRows: '5', targetRows: '4', checksum: 'different', equal: false },
    ]);
    const [a, b] = s.snapshot().tables;
    expect(a).toMatchObject({ validation: 'equal', sourceRows: '5', targetRows: '5' });
    expect(b).toMatchObject({ validation: 'different', sourceRows: '5', targetRows: '4' });
  });

  it('markValidationSkipped only changes pending tables', () => {
    const s = fresh();
    s.setTables(['public.a', 'public.b', 'public.c']);
    s.recordValidation([
      { table: 'public.a', sourceRows: '1', targetRows: '1', checksum: 'equal', equal: true },
      { table: 'public.b', sourceRows: '1', targetRows: '2', checksum: 'not-checked', equal: false },
    ]);
    s.markValidationSkipped();
    expect(s.snapshot().tables.map((t) => [t.name, t.validation])).toEqual([
      ['public.a', 'equal'],
      ['public.b', 'different'],
      ['public.c', 'skipped'],
    ]);
  });
});

describe('MigrationState: mode dump-restore', () => {
  const DR_STEPS: StepName[] = ['preflight', 'create-database', 'dump-restore', 'validate'];
  const dr = () => new MigrationState({ name: 'shop', mode: 'dump-restore', steps: DR_STEPS, now: T0 });

  it('has its own four steps; dump-restore is in the full-load phase', () => {
    const s = dr();
    expect(s.snapshot().steps.map((x) => x.step)).toEqual(DR_STEPS);
    s.stepStarted('dump-restore', T1);
    expect(s.phase).toBe('full-load');
    expect(() => s.stepStarted('create-tables', T1)).toThrow(/unknown step/);
  });

  it('refuses skip on dump-restore with the reason; retry and abort stay possible', () => {
    const s = dr();
    s.stepStarted('dump-restore', T1);
    s.stepFailed(failure('dump-restore', { type: 'TargetObjectConflict', table: 'public.orders' }));
    expect(s.pausedStep).toBe('dump-restore');
    const e = refusal(() => s.validateDecision({ action: 'skip' }));
    expect(e.message).toContain('dump-restore cannot be skipped');
    expect(e.message).toMatch(/without the source's tables and rows/);
    expect(() => s.validateDecision({ action: 'retry' })).not.toThrow();
    expect(() => s.validateDecision({ action: 'abort' })).not.toThrow();
  });

  it('recordLoad takes rows without load times (a restore has none per table)', () => {
    const s = dr();
    s.setTables(['public.a']);
    s.recordLoad([{ table: 'public.a', rows: '42' }]);
    const t = s.snapshot().tables[0]!;
    expect(t).toMatchObject({ name: 'public.a', fullLoadRows: '42', validation: 'pending' });
    expect(t.loadMs).toBeUndefined();
  });
});

describe('MigrationState: taking a table out of the migration', () => {
  const cdcState = () => {
    const steps: StepName[] = ['preflight', 'create-tables', 'full-load', 'build-indexes', 'cdc', 'validate', 'finalize'];
    const s = new MigrationState({ name: 'shop', mode: 'full-load-and-cdc', steps, now: T0 });
    s.setTables(['public.keyed', 'public.log']);
    s.stepStarted('cdc', T0);
    return s;
  };

  it('a table gone from the source (42P01) in the load: skip takes it out, the step runs again without it', () => {
    const s = fresh();
    s.setTables(['public.big', 'public.small']);
    s.stepStarted('full-load', T0);
    s.stepFailed(failure('full-load', { type: 'SourceObjectMissing', code: '42P01', table: 'public.small' }));
    expect(s.snapshot().failure?.hint).toContain('`dbferry skip shop` takes it out of this migration');
    expect(s.decide({ action: 'skip', reason: 'retired' }, T2)).toContain('public.small is taken out of the migration');
    expect(s.takeDecision(T2)).toEqual({ action: 'skip', reason: 'retired', leaveOut: 'public.small' });
    const snap = s.snapshot();
    expect(snap.leftOut).toEqual([{ table: 'public.small', at: T2, reason: 'retired' }]);
    expect(snap.tables.map((t) => t.name)).toEqual(['public.big']);
    expect(stepRec(s, 'full-load').status).not.toBe('Skipped');
  });

  it('CDC on a table whose changes cannot be captured: the hint keeps the remedy and offers the skip', () => {
    const s = cdcState();
    s.stepFailed(failure('cdc', { type: 'PreflightBlocked', code: 'dbferry:changes-not-captured', table: 'public.log', hint: 'add a primary key' }));
    expect(s.snapshot().failure?.hint).toMatch(/^add a primary key; or `dbferry skip shop` takes public\.log out of this migration/);
    expect(s.leaveOutCandidate).toBe('public.log');
  });

  it('any other missing object naming a table is no reason: skip stays refused where it would lose data', () => {
    const s = cdcState();
    s.stepFailed(failure('cdc', { type: 'SourceObjectMissing', table: 'public.log' }));
    expect(s.leaveOutCandidate).toBeUndefined();
    expect(refusal(() => s.decide({ action: 'skip' }, T2)).message).toContain('cdc cannot be skipped');
  });
});
