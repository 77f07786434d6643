import type { CleanupResult, MigrationReport, MigrationStatus, TableStats, TableTotals } from '../plan/migration-types';
import type { Plan } from '../plan/plan-schema';
import { TABLES_LISTED } from '../plan/table-lists';

/** Plain words for the Web UI's "current details": what the migration is doing now. */
export function currentDetails(s: MigrationStatus): string {
  const lines = [`**${s.name}** (${s.mode}) — phase **${s.phase}**`];
  if (s.source || s.target) lines.push(`${s.source ?? '?'} → ${s.target ?? '?'}`);
  const done = s.steps.filter((x) => x.status === 'Succeeded' || x.status === 'Skipped').map((x) => x.step);
  if (done.length) lines.push(`done: ${done.join(', ')}`);
  if (s.phase === 'awaiting-operator' && s.failure) {
    lines.push(
      `**waiting for an operator**: ${s.failure.step} failed (${s.failure.type})${s.failure.table ? ` on ${s.failure.table}` : ''}: ${s.failure.message}`,
    );
    if (s.failure.hint) lines.push(`hint: ${s.failure.hint}`);
    lines.push(`decide with: \`dbferry retry ${s.name}\`, \`dbferry skip ${s.name}\` or \`dbferry abort ${s.name}\``);
  }
  return lines.join('\n\n');
}

/** What an aborted migration leaves where, so a person can clean up or keep it. */
export function leftBehind(s: MigrationStatus, plan: Plan, sourceCleanup?: CleanupResult): string[] {
  const out: string[] = [];
  const stepDone = (name: string) => s.steps.some((x) => x.step === name && x.status !== 'NotRun');
  const target = s.target ?? 'the target';
  if (stepDone('create-database') && plan.target.createDatabase) {
    out.push(`${target}: the database may have been created by this migration; it is kept`);
  }
  if (stepDone('create-tables') || stepDone('dump-restore')) {
    // A large schema's status names only some tables: its totals count the rows of all.
    const loaded = s.totals ? `${s.totals.fullLoadRows} rows loaded` : `${s.tables.filter((t) => t.fullLoadRows !== undefined).length} loaded`;
    out.push(
      `${target}: ${s.totals?.tables ?? s.tables.length} table(s) created by this migration are kept (${loaded}); drop them before starting ${plan.name} again`,
    );
    out.push(`${target}: schema _dbferry keeps this migration's bookkeeping (safe to drop once the tables are gone)`);
  }
  if (plan.mode !== 'full-load-and-cdc' && plan.mode !== 'cdc') {
    out.push(`${s.source ?? 'the source'}: nothing (a full load leaves nothing on the source)`);
  } else if (sourceCleanup) {
    for (const d of sourceCleanup.dropped) out.push(`${d}: dropped`);
    for (const k of sourceCleanup.kept) out.push(k);
  } else {
    const held = s.cdc?.sourceObjects?.length ? s.cdc.sourceObjects.join(' and ') : 'what CDC holds there';
    out.push(`${s.source ?? 'the source'}: ${held} may remain (dropping failed): run dbferry cleanup ${plan.name}`);
  }
  return out;
}

/**
 * Per-table entries kept in the memo and the final report. A memo is rewritten on every phase
 * change and a payload over 2 MB fails the workflow task: 10,000 tables of statistics would.
 */
export const TABLES_IN_MEMO = TABLES_LISTED;

export function tableTotals(tables: TableStats[]): TableTotals {
  const totals: TableTotals = { tables: tables.length, loaded: 0, fullLoadRows: '0', equal: 0, different: 0, pending: 0 };
  let rows = 0n;
  for (const t of tables) {
    if (t.fullLoadRows !== undefined) totals.loaded!++;
    rows += BigInt(t.fullLoadRows ?? '0');
    if (t.validation === 'equal') totals.equal++;
    else if (t.validation === 'different') totals.different++;
    else if (t.validation === 'pending') totals.pending++;
  }
  totals.fullLoadRows = rows.toString();
  return totals;
}

/** The status with at most `limit` tables (those that differ first) and totals over all. */
export function compactStatus(s: MigrationStatus, limit = TABLES_IN_MEMO): MigrationStatus {
  if (s.tables.length <= limit) return s;
  const ranked = [...s.tables].sort((a, b) => Number(b.validation === 'different') - Number(a.validation === 'different'));
  // Totals the state already counted over every table (a large schema) stay as they are.
  return { ...s, tables: ranked.slice(0, limit), tablesOmitted: (s.tablesOmitted ?? 0) + s.tables.length - limit, totals: s.totals ?? tableTotals(s.tables) };
}

/** The final report, small enough for a workflow result whatever the number of tables. */
export function compactReport(r: MigrationReport, limit = TABLES_IN_MEMO): MigrationReport {
  const out: MigrationReport = { ...r, status: compactStatus(r.status, limit) };
  if (r.load && r.load.tables.length > limit) out.load = { ...r.load, tables: r.load.tables.slice(0, limit) };
  if (r.validation && r.validation.tables.length > limit) {
    const differing = r.validation.tables.filter((t) => !t.equal);
    out.validation = { ...r.validation, tables: [...differing, ...r.validation.tables.filter((t) => t.equal)].slice(0, Math.max(limit, differing.length)) };
  }
  if (r.dumpRestore && r.dumpRestore.tables.length > limit) out.dumpRestore = { ...r.dumpRestore, tables: r.dumpRestore.tables.slice(0, limit) };
  return out;
}
