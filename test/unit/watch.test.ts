import { toFrame } from '../../client/watch';
import type { CdcProgress, MigrationStatus } from '../../plan/migration-types';

const status = (over: Partial<MigrationStatus>): MigrationStatus => ({
  name: 'm',
  mode: 'full-load-and-cdc',
  phase: 'full-load',
  startedAt: '2026-11-21T00:00:00Z',
  steps: [],
  tables: [
    { name: 'public.a', inserts: 0, updates: 0, deletes: 0, validation: 'pending', fullLoadRows: '10' },
    { name: 'public.b', inserts: 0, updates: 0, deletes: 0, validation: 'pending' },
  ],
  decisions: [],
  ...over,
});

describe('dbferry watch frames', () => {
  it('turns a loader heartbeat into percent, rate and ETA', () => {
    const now = Date.parse('2026-11-21T00:00:10Z');
    const beat = { activity: 'loadTask', task: 3, current: 'public.b chunk 2/4', unitBytes: 40_000_000, unitEstBytes: 100_000_000, unitStartedAt: '2026-11-21T00:00:00Z' };
    const f = toFrame(status({}), [beat, { activity: 'holdSnapshot' }], undefined, undefined, now);
    expect(f.tables).toEqual({ total: 2, loaded: 1 });
    expect(f.loading).toEqual([{ unit: 'public.b chunk 2/4', bytes: 40_000_000, estimatedBytes: 100_000_000, percent: 40, bytesPerSecond: 4_000_000, etaSeconds: 15 }]);
  });

  it('a schema too large to name every table: loaded comes from the counted totals, not from what validation left pending', () => {
    const now = Date.parse('2026-11-21T00:00:02Z');
    const loadedNotValidated = { tables: 50_000, loaded: 50_000, fullLoadRows: '100000', equal: 0, different: 0, pending: 50_000 };
    expect(toFrame(status({ totals: loadedNotValidated }), [], undefined, undefined, now).tables).toEqual({ total: 50_000, loaded: 50_000 });
    const notYet = { tables: 50_000, loaded: 0, fullLoadRows: '0', equal: 0, different: 0, pending: 50_000 };
    expect(toFrame(status({ totals: notYet }), [], undefined, undefined, now).tables).toEqual({ total: 50_000, loaded: 0 });
    // A status written before loaded tables were counted: the named loaded tables (one of the two
    // listed here), not what validation left pending (all of them).
    const { loaded: _, ...uncounted } = notYet;
    expect(toFrame(status({ totals: uncounted }), [], undefined, undefined, now).tables).toEqual({ total: 50_000, loaded: 1 });
    const validated = { ...uncounted, equal: 30_000, pending: 20_000 };
    expect(toFrame(status({ totals: validated }), [], undefined, undefined, now).tables).toEqual({ total: 50_000, loaded: 30_000 });
  });

  it('a loader building a loaded table\'s keys while others copy shows as building, not as a bar of copying', () => {
    const now = Date.parse('2026-11-21T00:00:10Z');
    const copying = { activity: 'loadTask', task: 1, current: 'public.b', unitBytes: 1, unitEstBytes: 2, unitStartedAt: '2026-11-21T00:00:00Z' };
    const building = { activity: 'loadTask', task: 2, building: 'public.a' };
    const f = toFrame(status({}), [copying, building], undefined, undefined, now);
    expect(f.building).toEqual(['public.a']);
    expect(f.loading.map((l) => l.unit)).toEqual(['public.b']);
  });

  it('an estimate below what was copied caps at 100 % with no time left', () => {
    const now = Date.parse('2026-11-21T00:00:02Z');
    const beat = { activity: 'loadTask', task: 1, current: 'public.a', unitBytes: 5_000, unitEstBytes: 1_000, unitStartedAt: '2026-11-21T00:00:00Z' };
    expect(toFrame(status({}), [beat], undefined, undefined, now).loading[0]).toMatchObject({ percent: 100, etaSeconds: 0 });
  });

  it('a full load DMS runs: tables loaded and the ones loading from its statistics', () => {
    const now = Date.parse('2026-11-21T00:00:10Z');
    const beat = { activity: 'managedLoad', step: 'full load (AWS DMS)', status: 'running', percent: 40, tablesLoaded: 1, tablesTotal: 3, loading: [{ table: 'public.b', rows: 1234 }] };
    const f = toFrame(status({}), [beat], undefined, undefined, now);
    expect(f.tables).toEqual({ total: 3, loaded: 1 });
    expect(f.managed).toEqual({ percent: 40, loading: [{ table: 'public.b', rows: 1234 }] });
  });

  it('CDC: lag from the applier, apply rate from two heartbeats', () => {
    const cdc: CdcProgress = { appliedPosition: 'postgres:0/10', sourcePosition: 'postgres:0/20', lagBytes: '16', lagSeconds: 0.4, caughtUp: false, transactions: 5, changes: 1_500, tables: [], at: '' };
    const now = Date.parse('2026-11-21T00:00:10Z');
    const f = toFrame(status({ phase: 'cdc' }), [{ activity: 'streamChanges', ...cdc }], cdc, { n: 500, at: now - 2_000 }, now);
    expect(f.cdc).toMatchObject({ lagBytes: '16', lagSeconds: 0.4, caughtUp: false, changesPerSecond: 500 });
  });
});
