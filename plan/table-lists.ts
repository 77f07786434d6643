/**
 * How many tables a result names. A step's activity result, the memo and the final report go
 * into the workflow's history, where a payload over 2 MB fails the workflow task: at about 100
 * bytes a table, a result naming every table of a 50,000-table schema would. So each names at
 * most TABLES_LISTED tables, those that matter most first (the differing ones, the largest),
 * and counts the rest; every table's own figures stay in the target's `_dbferry` tables.
 */
export const TABLES_LISTED = 200;

/** At most `limit` of `items`: ordered by `rank` (those that matter most first), then as given (the sort is stable). */
export function listed<T>(items: readonly T[], rank: (a: T, b: T) => number, limit = TABLES_LISTED): T[] {
  return items.length <= limit ? [...items] : [...items].sort(rank).slice(0, limit);
}

/** Larger first, for `listed`: sizes as numbers or as the decimal texts big counts travel in. */
export function largerFirst<T>(size: (t: T) => number | string | undefined): (a: T, b: T) => number {
  return (a, b) => {
    const x = BigInt(size(a) ?? 0);
    const y = BigInt(size(b) ?? 0);
    return x < y ? 1 : x > y ? -1 : 0;
  };
}

/** The tables with the most changes applied (at most TABLES_LISTED), by name. */
export function busiest<T extends { table: string; inserts: number; updates: number; deletes: number }>(tables: readonly T[]): T[] {
  const changes = (t: T) => t.inserts + t.updates + t.deletes;
  return listed(tables, (a, b) => changes(b) - changes(a)).sort((a, b) => a.table.localeCompare(b.table));
}
