import { boundedFindings } from '../../activities/native/preflight';
import type { Finding } from '../../plan/migration-types';
import { busiest, largerFirst, listed, TABLES_LISTED } from '../../plan/table-lists';
import { lockTableOverflow } from '../../activities/postgres/schema-objects';

describe('results that name at most TABLES_LISTED tables', () => {
  it('names the ones that matter most first, and all of them when they fit', () => {
    const sizes = Array.from({ length: 1000 }, (_, i) => ({ name: `t${i}`, bytes: String((i * 7919) % 1000) }));
    const top = listed(sizes, largerFirst((t) => t.bytes));
    expect(top).toHaveLength(TABLES_LISTED);
    expect(top[0]).toEqual({ name: expect.any(String), bytes: '999' });
    expect(Math.min(...top.map((t) => Number(t.bytes)))).toBe(1000 - TABLES_LISTED);
    // Sizes past 2^53 (bytes of a large table as text) compare exactly.
    expect(listed([{ b: '9007199254740993' }, { b: '9007199254740992' }], largerFirst((t) => t.b), 1)).toEqual([{ b: '9007199254740993' }]);
    expect(listed(sizes.slice(0, 3), largerFirst((t) => t.bytes))).toEqual(sizes.slice(0, 3));
    const changes = Array.from({ length: 500 }, (_, i) => ({ table: `s.t${String(i).padStart(3, '0')}`, inserts: i, updates: 0, deletes: 0 }));
    const b = busiest(changes);
    expect(b).toHaveLength(TABLES_LISTED);
    expect(b[0]!.table).toBe('s.t300');
    expect(b[b.length - 1]!.table).toBe('s.t499');
  });

  it('preflight names at most 50 findings of a kind and counts the others', () => {
    const findings: Finding[] = [
      ...Array.from({ length: 50_000 }, (_, i): Finding => ({ severity: 'blocking', code: 'cdc-no-primary-key', table: `s.t${i}`, message: `s.t${i} has no primary key` })),
      { severity: 'warning', code: 'target-older', message: 'older' },
    ];
    const out = boundedFindings(findings);
    expect(out).toHaveLength(52);
    expect(out.filter((f) => f.code === 'cdc-no-primary-key' && f.table)).toHaveLength(50);
    expect(out[out.length - 1]).toEqual({ severity: 'blocking', code: 'cdc-no-primary-key', message: 'and 49950 more blocking findings like the ones above (cdc-no-primary-key)' });
    expect(boundedFindings(findings.slice(-3))).toEqual(findings.slice(-3));
  });
});

describe("pg_dump's locks on a large schema", () => {
  it('fit in 80% of the lock table; past that, the setting that fits them', () => {
    // A default server: 64 locks × 122 backends (100 connections, 3 autovacuum workers and the
    // launcher, 8 worker processes, 10 WAL senders) = 7,808: 6,000 tables fit, 50,000 do not.
    expect(lockTableOverflow({ tables: 6_000, per: 64, backends: 122, prepared: 0 })).toBeUndefined();
    const over = lockTableOverflow({ tables: 50_000, per: 64, backends: 122, prepared: 0 })!;
    expect(over).toEqual({ slots: 7_808, needed: 576 });
    // The setting it names makes them fit.
    expect(lockTableOverflow({ tables: 50_000, per: over.needed, backends: 122, prepared: 0 })).toBeUndefined();
    expect(lockTableOverflow({ tables: 50_000, per: over.needed - 64, backends: 122, prepared: 0 })).toBeDefined();
  });
});
