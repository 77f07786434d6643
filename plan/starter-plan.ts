import { PLAN_NAME, PLAN_NAME_MAX, SOURCE_ENGINES, type SourceEngine } from './plan-schema';
import { urlSchemesFor } from './secret-ref';

export interface StarterPlanInput {
  name: string;
  source: { engine: SourceEngine; ref: string };
  target: { ref: string };
  /** Where the plan's JSON Schema is, for editors (a path relative to the plan, or a URL). */
  schema?: string;
}

/** The engine an inline URL's scheme names, or undefined. */
export function engineOfUrl(url: string): SourceEngine | 'unknown' | undefined {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  return SOURCE_ENGINES.find((e) => urlSchemesFor(e).includes(scheme)) ?? 'unknown';
}

/** A plan name from a database name: lower case, `-` for anything else, at most 50 characters. */
export function planNameFrom(database: string | undefined): string {
  const n = (database ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, PLAN_NAME_MAX);
  return PLAN_NAME.test(n) ? n : 'migration';
}

/**
 * A commented starter plan: valid as it is (a full load of every table of the source), with
 * the choices a user makes next written out as comments. docs/plan.md has every field.
 */
export function starterPlan(p: StarterPlanInput): string {
  // Comments in one column, whatever the names and references are.
  const c = (code: string, comment: string) => `${code.padEnd(34)}  # ${comment}`;
  // A reference as YAML reads it back: plain when it is safe, else a quoted string.
  const scalar = (v: string) => (/^[A-Za-z0-9_/@.%?=&+-][A-Za-z0-9_:/@.%?=&+-]*$/.test(v) && !/:(\s|$)/.test(v) ? v : JSON.stringify(v));
  const mysql = p.source.engine === 'mysql';
  // MySQL: %.% is every table of the URL's database (its name needs no quoting here then).
  const include = mysql ? '%.%' : 'public.%';
  return `${p.schema ? `# yaml-language-server: $schema=${p.schema}\n` : ''}# A dbferry plan (reference: docs/plan.md; \`dbferry schema\` prints its JSON Schema).
# Check it with \`dbferry check <this file>\`, then \`dbferry start <this file> --wait\`.
${c(`name: ${p.name}`, `the migration's name: workflow id migration-${p.name}`)}
${c(`mode: full-load`, `full-load | full-load-and-cdc (then cutover) | cdc${mysql ? '' : ' | dump-restore'}`)}
${c(`# runner: native`, `native (default) | aws (AWS DMS moves the rows)`)}

source:
  engine: ${p.source.engine}
${c(`  url: ${scalar(p.source.ref)}`, `a reference each worker resolves: env:VAR, file:PATH or aws-secret:ARN`)}
  # tls: { mode: verify-full, ca: file:/etc/ssl/source-ca.pem }

target:
  engine: postgres
  url: ${scalar(p.target.ref)}
${c(`  # createDatabase: true`, `CREATE DATABASE when the URL's database is missing`)}
  # tls: { mode: verify-full, ca: file:/etc/ssl/target-ca.pem }

tables:
${c(`  include: ["${include}"]`, mysql ? `every table of the URL's database; database.table patterns, % matches anything` : `schema.table patterns; % matches anything`)}
  # exclude: ["${mysql ? '%' : 'public'}.tmp_%"]

load:
${c(`  parallel: 4`, `tables (or chunks) loaded at once, 1-64`)}
${c(`  # chunkRows: 2000000`, `split big tables into chunks of about this many rows`)}

${c(`# cdc:`, `modes full-load-and-cdc and cdc`)}
#   slot: dbferry_${p.name.replace(/-/g, '_')}
#   publication: dbferry_${p.name.replace(/-/g, '_')}

validate:
${c(`  checksums: true`, `row counts always; checksums of every row when true`)}

# alerts:
${c(`#   webhook: env:ALERT_WEBHOOK_URL`, `Slack-compatible webhook; the URL carries a token`)}
#   lagSeconds: 60
`;
}
