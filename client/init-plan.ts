import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parsePlanYaml } from '../plan';
import { describeEndpoint, parseSecretRef, secretRefProblem } from '../plan/secret-ref';
import { engineOfUrl, planNameFrom, starterPlan } from '../plan/starter-plan';
import { PLAN_NAME, PLAN_NAME_MAX, type SourceEngine } from '../plan/plan-schema';
import { CliError, Exit } from './exit-codes';

export interface InitOptions {
  source: string;
  target: string;
  sourceEngine?: SourceEngine;
  name?: string;
  force?: boolean;
}

export interface InitResult {
  file: string;
  name: string;
  sourceEngine: SourceEngine;
}

/**
 * `dbferry init`: a starter plan for two URL references. The source engine comes from the URL's
 * scheme, read here only when the reference can be (a variable set in this shell, a file); the
 * URL itself never enters the plan, only the reference.
 */
export function initPlan(file: string, o: InitOptions): { text: string; result: InitResult } {
  for (const [flag, ref] of [['--source', o.source], ['--target', o.target]] as const) {
    const problem = secretRefProblem(ref, 'url');
    if (problem) throw new CliError(Exit.BadInput, `${flag}: ${problem}`);
  }
  const source = peekUrl(o.source);
  const target = peekUrl(o.target);
  const seen = source ? engineOfUrl(source) : undefined;
  if (seen === 'unknown') throw new CliError(Exit.BadInput, `--source: the URL's scheme is not a source engine: expected postgres://, postgresql://, mysql:// or mariadb://`);
  if (seen && o.sourceEngine && seen !== o.sourceEngine) throw new CliError(Exit.BadInput, `--source-engine ${o.sourceEngine} contradicts the source URL's scheme (${seen})`);
  const engine = seen ?? o.sourceEngine;
  if (!engine) {
    throw new CliError(Exit.BadInput, `--source ${o.source}: the URL cannot be read here to see its engine (${describeUnreadable(o.source)}): add --source-engine postgres or --source-engine mysql`);
  }
  const targetEngine = target ? engineOfUrl(target) : undefined;
  if (targetEngine && targetEngine !== 'postgres') throw new CliError(Exit.BadInput, `--target: expected a PostgreSQL URL (postgres:// or postgresql://): dbferry migrates into PostgreSQL`);
  if (o.name !== undefined && (!PLAN_NAME.test(o.name) || o.name.length > PLAN_NAME_MAX)) {
    throw new CliError(Exit.BadInput, `--name: expected lower-case letters, digits and -, starting with a letter or digit, at most ${PLAN_NAME_MAX} characters, got ${JSON.stringify(o.name)}`);
  }
  const name = o.name ?? planNameFrom(source ? databaseOf(engine, source) : undefined);
  const text = starterPlan({ name, source: { engine, ref: o.source }, target: { ref: o.target }, ...schemaPath(file) });
  const parsed = parsePlanYaml(text);
  // What init writes must be a plan dbferry takes: anything else is dbferry's bug, not the user's.
  if (!parsed.ok) throw new Error(`the starter plan is not valid: ${parsed.issues.map((i) => i.message).join('; ')}`);
  if (file !== '-') {
    if (existsSync(file) && !o.force) throw new CliError(Exit.Refused, `${file} exists: not overwritten (--force overwrites it)`);
    try {
      writeFileSync(file, text);
    } catch (err) {
      throw new CliError(Exit.Failed, `${file}: cannot write the plan (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  }
  return { text, result: { file, name, sourceEngine: engine } };
}

/** The URL behind a reference when this shell can read it; never printed. */
function peekUrl(ref: string): string | undefined {
  const r = parseSecretRef(ref);
  if (r.kind === 'inline') return r.value;
  if (r.kind === 'env') return process.env[r.name] || undefined;
  if (r.kind === 'file') {
    try {
      return readFileSync(r.path, 'utf8').trim();
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function describeUnreadable(ref: string): string {
  const r = parseSecretRef(ref);
  if (r.kind === 'env') return `${r.name} is not set in this shell`;
  if (r.kind === 'file') return `${r.path} cannot be read`;
  return 'an AWS Secrets Manager secret is read by the workers only';
}

/** The database a URL names (path or dbname), read as the endpoint description reads it. */
function databaseOf(engine: string, url: string): string | undefined {
  // engine/host:port/database: the host part never holds a '/'.
  return describeEndpoint(engine, url).split('/').slice(2).join('/') || undefined;
}

/** The repository's JSON Schema, relative to the new plan, for editors (the yaml-language-server line). */
function schemaPath(file: string): { schema?: string } {
  const schema = join(__dirname, '..', '..', 'schema', 'plan.schema.json');
  if (file === '-' || !existsSync(schema)) return {};
  return { schema: relative(dirname(resolve(file)), schema) || 'plan.schema.json' };
}
