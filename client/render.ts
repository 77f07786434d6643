import { formatBytes, formatDuration } from '../plan/units';
import type { LoadEstimate } from '../plan/capacity';
import type { CdcProgress, MigrationReport, MigrationStatus, PreflightReport, StepRecord, TableTotals } from '../plan/migration-types';

/** Human-readable output. `--json` prints the objects themselves instead. */

function stepDuration(s: StepRecord, now: number): string {
  if (!s.startedAt) return '';
  const end = s.endedAt ? Date.parse(s.endedAt) : now;
  return formatDuration(end - Date.parse(s.startedAt));
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** The CDC applier's last heartbeat among the live details, if it runs. */
export function cdcProgress(live: unknown[]): CdcProgress | undefined {
  return live.find((x): x is CdcProgress & { activity: string } => (x as { activity?: string }).activity === 'streamChanges');
}

export function formatStatus(s: MigrationStatus, live?: unknown): string {
  const now = Date.now();
  const out: string[] = [];
  out.push(`migration ${s.name}  phase: ${s.phase}  mode: ${s.mode}`);
  if (s.source || s.target) out.push(`${s.source ?? '?'}  →  ${s.target ?? '?'}`);
  out.push(`started ${s.startedAt}${s.endedAt ? `, ended ${s.endedAt}` : ''}`);
  out.push('');
  out.push(table([['step', 'status', 'time'], ...s.steps.map((x) => [x.step, x.status + (x.operatorRetries ? ` (retried ${x.operatorRetries}×)` : ''), stepDuration(x, now)])]));
  const cdc = Array.isArray(live) ? cdcProgress(live) : undefined;
  if (s.cdc) out.push('', `CDC: ${s.cdc.sourceObjects?.join(', ') ?? 'preparing'}${s.cdc.startPosition ? `; from ${s.cdc.startPosition}` : ''}`);
  if (cdc) {
    out.push(
      `  applied up to ${cdc.appliedPosition} (source at ${cdc.sourcePosition}); lag ${formatBytes(Number(cdc.lagBytes))}, ${cdc.lagSeconds.toFixed(1)} s; ` +
        `${cdc.caughtUp ? 'caught up' : 'catching up'}; ${cdc.transactions} transactions, ${cdc.changes} changes applied`,
    );
    const open = cdc.inProgress;
    if (open && open.transactions > 0) {
      out.push(`  applying ${open.transactions} large transaction${open.transactions > 1 ? 's' : ''} while ${open.transactions > 1 ? 'they run' : 'it runs'}: ${open.changes} changes so far, committed with the source's commit`);
    }
    const retrying = (cdc as { retrying?: { attempt: number; error: string } }).retrying;
    if (retrying) out.push(`  FAILING: attempt ${retrying.attempt} of the applier failed, retrying: ${retrying.error}`);
  }
  if (s.cdc?.paused) out.push(`  PAUSED by the operator at ${s.cdc.paused.at}${s.cdc.paused.reason ? ` (${s.cdc.paused.reason})` : ''}: dbferry resume ${s.name}`);
  if (s.cdc?.cutover) out.push(`  cutover: marker at ${s.cdc.cutover.markerPosition} (${s.cdc.cutover.at}); draining, then validate and finalize`);
  const rest = Array.isArray(live) ? live.filter((x) => x !== cdc) : live;
  if (rest && (!Array.isArray(rest) || rest.length > 0)) out.push('', `live: ${JSON.stringify(rest)}`);
  if (s.tables.length > 0) {
    out.push('');
    const shown = s.tables.slice(0, 50);
    out.push(table([['table', 'full-load rows', 'ins', 'upd', 'del', 'validation'], ...shown.map((t) => [t.name, t.fullLoadRows ?? '-', String(t.inserts), String(t.updates), String(t.deletes), t.validation])]));
    const more = s.tables.length - shown.length + (s.tablesOmitted ?? 0);
    if (more > 0) out.push(`… and ${more} more tables${s.tablesOmitted ? '' : ' (--json lists all)'}`);
    if (s.totals) out.push(totalsLine(s.totals));
    out.push(...conversionLines(s.tables));
  }
  if (s.failure && (s.phase === 'awaiting-operator' || s.phase === 'failed')) {
    out.push('', `FAILED STEP: ${s.failure.step} (${s.failure.type})${s.failure.table ? ` on table ${s.failure.table}` : ''}`);
    out.push(`  ${s.failure.message}`);
    if (s.failure.hint) out.push(`  hint: ${s.failure.hint}`);
    if (s.phase === 'awaiting-operator') out.push(`  decide: dbferry retry ${s.name} | dbferry skip ${s.name} | dbferry abort ${s.name} [--reason TEXT]`);
  }
  if (s.alerts?.missed.length) {
    out.push('', `ALERTS NOT DELIVERED (${s.alerts.missed.length}; ${s.alerts.sent} delivered):`, ...s.alerts.missed.map((m) => `  - ${m.at} ${m.kind}: ${m.error}`));
  }
  if (s.leftBehind?.length) out.push('', 'left behind:', ...s.leftBehind.map((l) => `  - ${l}`));
  if (s.leftOut?.length) out.push('', 'taken out of the migration (dropped on the source):', ...s.leftOut.map((l) => `  - ${l.table} at ${l.at}${l.reason ? ` (${l.reason})` : ''}`));
  return out.join('\n');
}

/** Values the load had to change (never silent): one line per table. */
function conversionLines(tables: MigrationStatus['tables']): string[] {
  const changed = tables.filter((t) => t.converted);
  return changed.length ? ['', 'converted on the way:', ...changed.map((t) => `  - ${t.name}: ${t.converted}`)] : [];
}

function totalsLine(t: TableTotals): string {
  return `all ${t.tables} tables: ${t.fullLoadRows} rows loaded; validation ${t.equal} equal, ${t.different} different, ${t.pending} pending`;
}

export function formatReport(r: MigrationReport): string {
  const s = r.status;
  const out: string[] = [`migration ${s.name}: ${s.phase}`];
  if (s.source) out.push(`${s.source}  →  ${s.target}`);
  const total = s.endedAt ? Date.parse(s.endedAt) - Date.parse(s.startedAt) : 0;
  const loaded = r.load ? `full load ${formatDuration(r.load.ms ?? 0)}` : r.dumpRestore ? `dump and restore ${formatDuration(r.dumpRestore.ms)}, ${r.dumpRestore.jobs} jobs` : undefined;
  out.push(`duration ${formatDuration(total)}` + (loaded ? ` (${loaded}` + (r.build ? `, keys and indexes ${formatDuration(r.build.ms)}` : '') + (r.validation ? `, validation ${formatDuration(r.validation.ms)}` : '') + ')' : ''));
  out.push('');
  const v = new Map((r.validation?.tables ?? []).map((t) => [t.table, t]));
  const rows = s.tables.map((t) => {
    const val = v.get(t.name);
    // Key redesign and mapping-added columns: what the target alone could be checked for.
    const own = [...(val?.references ?? []).map((x) => `${x.column}: ${x.wrong} wrong, ${x.orphans} orphans`), ...(val?.computed ?? []).map((x) => `${x.column}: ${x.wrong} wrong`)];
    return [t.name, t.fullLoadRows ?? '-', val ? `${val.equal ? 'equal' : 'DIFFERENT'} (rows ${val.targetRows}/${val.sourceRows}, checksum ${val.checksum}${own.map((x) => `; ${x}`).join('')})` : t.validation];
  });
  out.push(table([['table', 'rows', 'validation'], ...rows]));
  if (s.tablesOmitted) out.push(`… and ${s.tablesOmitted} more tables`);
  out.push(...conversionLines(s.tables));
  const totalRows = s.totals?.fullLoadRows ?? s.tables.reduce((a, t) => a + BigInt(t.fullLoadRows ?? '0'), 0n).toString();
  out.push('', `${s.totals?.tables ?? s.tables.length} tables, ${totalRows} rows` + (r.build ? `; ${r.build.primaryKeys} primary keys, ${r.build.uniques} unique constraints, ${r.build.indexes} indexes, ${r.build.foreignKeys} foreign keys, ${r.build.sequences} sequences carried` : ''));
  // A compacted report lists every differing table first, so none hides among the omitted.
  const allEqual = (r.validation?.tables ?? []).every((t) => t.equal) && !s.totals?.different;
  if (r.load?.readPoint) out.push(`read point: ${r.load.readPoint}`);
  out.push(r.validation ? `validation: ${allEqual ? 'every table equal' : 'DIFFERENCES FOUND'}` : 'validation: skipped');
  if (r.cdc) out.push(`CDC: ${r.cdc.transactions} transactions, ${r.cdc.changes} changes applied; stopped at the cutover marker ${r.cdc.markerPosition}`);
  if (r.finalize) {
    out.push(
      `cutover: ${r.finalize.sequences} sequences carried; ${[...r.finalize.cleanup.dropped.map((d) => `dropped ${d}`), ...r.finalize.cleanup.kept.map((k) => `kept ${k}`)].join('; ')}`,
    );
  }
  return out.join('\n');
}

export function formatPreflight(r: PreflightReport & { estimate?: LoadEstimate }): string {
  const out = [`source: ${r.source.description} (${serverName(r.source)})`, `target: ${r.target.description} (${serverName(r.target)})`, `tables selected: ${r.selected?.tables ?? r.tables.length}`];
  if (r.estimate) out.push(`estimate: ${r.estimate.text}`);
  if (r.findings.length === 0) out.push('findings: none');
  for (const f of r.findings) out.push(`${f.severity.toUpperCase()}: ${f.message}`);
  if (r.targetSchema) out.push('', '-- target schema (keys, indexes and foreign keys are built after the load)', ...r.targetSchema.map((s) => s.trimEnd() + ';'));
  if (r.targetSchemaOmitted) out.push(`-- … and ${r.targetSchemaOmitted} more statements`);
  return out.join('\n');
}

/** `PostgreSQL 16.4`, or a MySQL/MariaDB server's own version text (`10.11.6-MariaDB`, `MySQL 8.0.36`). */
function serverName(e: { description: string; version: string }): string {
  if (!/^(source|target) mysql\//.test(e.description)) return `PostgreSQL ${e.version}`;
  return /mariadb/i.test(e.version) ? e.version : `MySQL ${e.version}`;
}
