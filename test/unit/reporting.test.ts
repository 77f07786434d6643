import { parsePlan, type Plan } from '../../plan';
import type { StepName } from '../../plan/migration-types';
import { MigrationState } from '../../workflows/migration-state';
import { compactReport, compactStatus, currentDetails, leftBehind } from '../../workflows/reporting';

const STEPS: StepName[] = ['preflight', 'create-database', 'create-tables', 'full-load', 'build-indexes', 'validate'];
const T = '2024-01-01T00:00:00.000Z';

function planWith(createDatabase: boolean): Plan {
  const r = parsePlan({
    name: 'shop',
    source: { engine: 'postgres', url: 'env:SOURCE_URL' },
    target: { engine: 'postgres', url: 'env:TARGET_URL', createDatabase },
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.plan;
}

function state(): MigrationState {
  const s = new MigrationState({ name: 'shop', mode: 'full-load', steps: STEPS, now: T });
  s.setEndpoints('source postgres/src:5432/shop', 'target postgres/tgt:5432/shop');
  return s;
}

function runThrough(s: MigrationState, upTo: StepName): void {
  for (const step of STEPS.slice(0, STEPS.indexOf(upTo) + 1)) {
    s.stepStarted(step, T);
    s.stepSucceeded(step, T);
  }
}

describe('currentDetails', () => {
  it('shows name, mode, phase, endpoints and finished steps while running', () => {
    const s = state();
    runThrough(s, 'create-database');
    s.stepStarted('create-tables', T);
    const md = currentDetails(s.snapshot());
    expect(md).toContain('**shop** (full-load)');
    expect(md).toContain('phase **creating-tables**');
    expect(md).toContain('source postgres/src:5432/shop → target postgres/tgt:5432/shop');
    expect(md).toContain('done: preflight, create-database');
    expect(md).not.toMatch(/dbferry (retry|skip|abort)/);
    expect(md).not.toContain('waiting for an operator');
  });

  it('when paused, names the failure, table, hint and the retry/skip/abort commands', () => {
    const s = state();
    runThrough(s, 'create-tables');
    s.stepStarted('full-load', T);
    s.stepFailed({ step: 'full-load', type: 'DataError', message: 'value too long', table: 'public.orders', hint: 'widen the column', at: T });
    const md = currentDetails(s.snapshot());
    expect(md).toContain('phase **awaiting-operator**');
    expect(md).toContain('**waiting for an operator**: full-load failed (DataError) on public.orders: value too long');
    expect(md).toContain('hint: widen the column');
    expect(md).toContain('`dbferry retry shop`');
    expect(md).toContain('`dbferry skip shop`');
    expect(md).toContain('`dbferry abort shop`');
  });

  it('counts skipped steps as done and shows ? for unknown endpoints', () => {
    const s = new MigrationState({ name: 'm', mode: 'full-load', steps: STEPS, now: T });
    s.stepStarted('preflight', T);
    s.stepFailed({ step: 'preflight', type: 'PreflightBlocked', message: 'x', at: T });
    s.decide({ action: 'skip' }, T);
    s.takeDecision();
    s.setEndpoints('source postgres/a:1/b', undefined as unknown as string);
    const md = currentDetails(s.snapshot());
    expect(md).toContain('done: preflight');
    expect(md).toContain('source postgres/a:1/b → ?');
  });
});

describe('leftBehind', () => {
  it('before any target step: only the (empty) source line', () => {
    const s = state();
    runThrough(s, 'preflight');
    expect(leftBehind(s.snapshot(), planWith(true))).toEqual([
      'source postgres/src:5432/shop: nothing (a full load leaves nothing on the source)',
    ]);
  });

  it('mentions a possibly created database only when the plan creates databases', () => {
    const s = state();
    runThrough(s, 'create-database');
    const withCreate = leftBehind(s.snapshot(), planWith(true));
    expect(withCreate[0]).toBe('target postgres/tgt:5432/shop: the database may have been created by this migration; it is kept');
    const withoutCreate = leftBehind(s.snapshot(), planWith(false));
    expect(withoutCreate.some((l) => l.includes('database may have been created'))).toBe(false);
  });

  it('after create-tables: counts the tables and how many were loaded, and names _dbferry', () => {
    const s = state();
    runThrough(s, 'create-tables');
    s.setTables(['public.a', 'public.b', 'public.c']);
    s.stepStarted('full-load', T);
    s.recordLoad([{ table: 'public.a', rows: '3', bytes: 10, ms: 1, chunks: 1 }]);
    s.stepFailed({ step: 'full-load', type: 'DataError', message: 'x', at: T });
    const lines = leftBehind(s.snapshot(), planWith(false));
    expect(lines).toContain(
      'target postgres/tgt:5432/shop: 3 table(s) created by this migration are kept (1 loaded); drop them before starting shop again',
    );
    expect(lines).toContain("target postgres/tgt:5432/shop: schema _dbferry keeps this migration's bookkeeping (safe to drop once the tables are gone)");
    expect(lines[lines.length - 1]).toMatch(/^source postgres\/src:5432\/shop: nothing/);
  });

  it('a step that failed counts as having run (it may have left something)', () => {
    const s = state();
    runThrough(s, 'create-database');
    s.stepStarted('create-tables', T);
    s.stepFailed({ step: 'create-tables', type: 'TargetObjectConflict', message: 'x', at: T });
    const lines = leftBehind(s.snapshot(), planWith(true));
    expect(lines.some((l) => l.includes('table(s) created by this migration are kept'))).toBe(true);
  });

  it('uses generic words when the endpoints are unknown', () => {
    const s = new MigrationState({ name: 'shop', mode: 'full-load', steps: STEPS, now: T });
    runThrough(s, 'create-tables');
    const lines = leftBehind(s.snapshot(), planWith(true));
    expect(lines[0]).toMatch(/^the target: the database may have been created/);
    expect(lines[lines.length - 1]).toMatch(/^the source: nothing/);
  });
});

describe('compactStatus / compactReport', () => {
  const many = (n: number) => {
    const s = new MigrationState({ name: 'big', mode: 'full-load', steps: ['full-load', 'validate'], now: T });
    s.setTables(Array.from({ length: n }, (_, i) => `public.t${i}`));
    s.recordLoad(Array.from({ length: n }, (_, i) => ({ table: `public.t${i}`, rows: '2', bytes: 1, ms: 1, chunks: 1 })));
    s.recordValidation(Array.from({ length: n }, (_, i) => ({ table: `public.t${i}`, sourceRows: '2', targetRows: i === n - 1 ? '1' : '2', checksum: 'not-checked' as const, equal: i !== n - 1 })));
    return s.snapshot();
  };

  it('leaves a small schema as it is', () => {
    const s = many(5);
    expect(compactStatus(s, 10)).toEqual(s);
  });

  it('keeps a bounded list, the differing table first, with totals over all tables', () => {
    const c = compactStatus(many(10_000), 200);
    expect(c.tables).toHaveLength(200);
    expect(c.tables[0]).toMatchObject({ name: 'public.t9999', validation: 'different' });
    expect(c.tablesOmitted).toBe(9_800);
    expect(c.totals).toEqual({ tables: 10_000, loaded: 10_000, fullLoadRows: '20000', equal: 9_999, different: 1, pending: 0 });
    expect(JSON.stringify(c).length).toBeLessThan(64 * 1024);
  });

  it('a 50,000-table schema whose steps name 200 tables: totals come from the steps counts, over every table', () => {
    const s = new MigrationState({ name: 'huge', mode: 'full-load', steps: ['create-tables', 'full-load', 'validate'], now: T });
    const named = Array.from({ length: 200 }, (_, i) => `public.t${i}`);
    s.setTables(named, 50_000);
    expect(s.snapshot()).toMatchObject({ tablesOmitted: 49_800, totals: { tables: 50_000, loaded: 0, fullLoadRows: '0', equal: 0, different: 0, pending: 50_000 } });
    s.recordLoad(named.map((table) => ({ table, rows: '3' })), { tables: 50_000, rows: '100000' });
    expect(s.snapshot().totals).toEqual({ tables: 50_000, loaded: 50_000, fullLoadRows: '100000', equal: 0, different: 0, pending: 50_000 });
    // The validation names the differing tables first, among at most 200.
    const results = named.map((table, i) => ({ table, sourceRows: '3', targetRows: i < 3 ? '2' : '3', checksum: 'equal' as const, equal: i >= 3 }));
    s.recordValidation(results, { tables: 50_000, equal: 49_997, different: 3 });
    const snap = s.snapshot();
    expect(snap.totals).toEqual({ tables: 50_000, loaded: 50_000, fullLoadRows: '100000', equal: 49_997, different: 3, pending: 0 });
    expect(snap.tables).toHaveLength(200);
    // The memo keeps the counted totals (not the 200 named tables' own), with the differing first.
    const memo = compactStatus(snap, 10);
    expect(memo.totals).toEqual(snap.totals);
    expect(memo.tablesOmitted).toBe(49_990);
    expect(memo.tables.slice(0, 3).map((t) => t.validation)).toEqual(['different', 'different', 'different']);
    // An aborted migration says how many tables it leaves, not how many it named.
    expect(leftBehind({ ...snap, steps: [{ step: 'create-tables', status: 'Succeeded', operatorRetries: 0 }] }, { name: 'huge', target: {} } as never).join('\n')).toContain('50000 table(s) created by this migration are kept (100000 rows loaded)');
  });

  it('counted totals stay even when the steps together named every table, and a new validation replaces the old', () => {
    // 250 tables: create-tables (an earlier version) named all, the load and validation 200.
    const s = new MigrationState({ name: 'mid', mode: 'full-load', steps: ['create-tables', 'full-load', 'validate'], now: T });
    const all = Array.from({ length: 250 }, (_, i) => `public.t${String(i).padStart(3, '0')}`);
    s.setTables(all);
    s.recordLoad(all.slice(0, 200).map((table) => ({ table, rows: '10' })), { tables: 250, rows: '2500' });
    expect(s.snapshot().totals).toEqual({ tables: 250, loaded: 250, fullLoadRows: '2500', equal: 0, different: 0, pending: 250 });
    expect(s.snapshot().tablesOmitted).toBeUndefined();
    // The first validation: 210 differ, 200 of them named.
    s.recordValidation(all.slice(0, 200).map((table) => ({ table, sourceRows: '10', targetRows: '9', checksum: 'different' as const, equal: false })), { tables: 250, equal: 40, different: 210 });
    expect(s.snapshot().totals).toMatchObject({ equal: 40, different: 210, pending: 0 });
    // Retried after a fix: every table equal, 200 named; none stays "different" or "pending".
    s.recordValidation(all.slice(50, 250).map((table) => ({ table, sourceRows: '10', targetRows: '10', checksum: 'equal' as const, equal: true })), { tables: 250, equal: 250, different: 0 });
    const after = s.snapshot();
    expect(after.totals).toEqual({ tables: 250, loaded: 250, fullLoadRows: '2500', equal: 250, different: 0, pending: 0 });
    expect(after.tables.filter((t) => t.validation !== 'equal')).toEqual([]);
    expect(compactStatus(after).totals).toEqual(after.totals);
  });

  it('a schema whose steps named every table (results of earlier versions) counts them itself', () => {
    const s = new MigrationState({ name: 'old', mode: 'full-load', steps: ['create-tables', 'full-load', 'validate'], now: T });
    s.setTables(['a.x', 'a.y']);
    s.recordLoad([{ table: 'a.x', rows: '1' }, { table: 'a.y', rows: '2' }]);
    expect(s.snapshot().totals).toBeUndefined();
    expect(s.snapshot().tablesOmitted).toBeUndefined();
  });

  it('keeps every differing table in a compacted report', () => {
    const status = many(1000);
    const validation = { ms: 1, tables: status.tables.map((t) => ({ table: t.name, sourceRows: '2', targetRows: t.validation === 'equal' ? '2' : '1', checksum: 'not-checked' as const, equal: t.validation === 'equal' })) };
    const r = compactReport({ status, validation }, 10);
    expect(r.validation!.tables).toHaveLength(10);
    expect(r.validation!.tables[0]).toMatchObject({ table: 'public.t999', equal: false });
  });
});
