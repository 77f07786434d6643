import type { MigrationStatus } from '../plan/migration-types';
import type { Plan } from '../plan/plan-schema';

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
export function leftBehind(s: MigrationStatus, plan: Plan): string[] {
  const out: string[] = [];
  const stepDone = (name: string) => s.steps.some((x) => x.step === name && x.status !== 'NotRun');
  const target = s.target ?? 'the target';
  if (stepDone('create-database') && plan.target.createDatabase) {
    out.push(`${target}: the database may have been created by this migration; it is kept`);
  }
  if (stepDone('create-tables') || stepDone('dump-restore')) {
    const loaded = s.tables.filter((t) => t.fullLoadRows !== undefined).length;
    out.push(
      `${target}: ${s.tables.length} table(s) created by this migration are kept (${loaded} loaded); drop them before starting ${plan.name} again`,
    );
    out.push(`${target}: schema _dbferry keeps this migration's bookkeeping (safe to drop once the tables are gone)`);
  }
  out.push(`${s.source ?? 'the source'}: nothing (a full load leaves no slot or publication)`);
  return out;
}
