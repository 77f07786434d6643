/**
 * Turning a plan file into a `Plan`, or into issues a person can act on: each names the field
 * path, what was expected and what was given — with anything that may be a secret masked, since
 * these messages reach terminals, CI logs and workflow history.
 */
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { keysAlsoDefinedByRules } from './key-redesign';
import { completePlan, MODES, PLAN_FIELDS, planInputSchema, type Plan } from './plan-schema';
import { redactSecretValue, redactUrl, scrubCredentials, secretRefProblem, type SecretField } from './secret-ref';

export interface PlanIssue {
  /** Field path such as `source.url`, `tables.include[0]`; `(plan)` or `(file)` for the whole. */
  path: string;
  /** The offending value, redacted; absent when it is not a scalar or was not given. */
  value?: unknown;
  message: string;
}

export type ParsePlanResult = { ok: true; plan: Plan } | { ok: false; issues: PlanIssue[] };

export interface ParsePlanOptions {
  /**
   * Reads `tables.mappings: file:PATH` and returns the parsed JSON. The CLI supplies it; plan/
   * stays free of I/O so workflow code can import it.
   */
  readMappings?: (path: string) => unknown;
}

type Segment = PropertyKey;

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const SECRET_FIELDS: ReadonlySet<string> = new Set<SecretField>(['url', 'ca', 'webhook']);

export function formatPath(path: readonly Segment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const s = redactUrl(String(seg));
      out += PLAIN_KEY.test(s) ? (out ? `.${s}` : s) : `[${JSON.stringify(s)}]`;
    }
  }
  return out || '(plan)';
}

function valueAt(root: unknown, path: readonly Segment[]): unknown {
  let v: unknown = root;
  for (const seg of path) {
    if (Array.isArray(v) && typeof seg === 'number') v = v[seg];
    else if (isRecord(v) && typeof seg !== 'symbol') v = v[String(seg)];
    else return undefined;
  }
  return v;
}

function secretField(path: readonly Segment[]): SecretField | undefined {
  const last = path[path.length - 1];
  return typeof last === 'string' && SECRET_FIELDS.has(last) ? (last as SecretField) : undefined;
}

function redactValue(v: unknown, field: SecretField | undefined): unknown {
  if (typeof v !== 'string') return v;
  return field ? redactSecretValue(v, field) : redactUrl(v);
}

/** How much of a wrong value an error shows: enough to recognize it, never a whole file. */
const SHOWN_CHARS = 60;

function describeValue(v: unknown): string {
  if (v === null) return 'null (an empty value)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return describeText(v);
  return String(v);
}

/** A wrong string as an error shows it: credentials masked, cut short, binary content not at all. */
function describeText(v: string): string {
  if (/[\u0000-\u0008\u000e-\u001f\ufffd]/.test(v)) return `${v.length} characters of binary content (is this the right file?)`;
  const clean = scrubCredentials(v);
  return clean.length > SHOWN_CHARS ? `${JSON.stringify(clean.slice(0, SHOWN_CHARS))}… (${clean.length} characters)` : JSON.stringify(clean);
}

/** "expected …" messages get the given value appended; other messages stand alone. */
function makeIssue(path: readonly Segment[], message: string, value: unknown): PlanIssue {
  const shown = redactValue(value, secretField(path));
  const issue: PlanIssue = { path: formatPath(path), message };
  if (value !== undefined && message.startsWith('expected ')) issue.message = `${message}, got ${describeValue(shown)}`;
  if (value !== undefined && (shown === null || typeof shown !== 'object')) issue.value = shown;
  return issue;
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
};

/** For the few schemas without their own message. */
const fallbackErrors = (iss: z.core.$ZodRawIssue): string | undefined => {
  if (iss.code === 'invalid_type') return iss.input === undefined ? 'required' : `expected ${TYPE_WORDS[iss.expected] ?? iss.expected}`;
  if (iss.code === 'unrecognized_keys') return 'unknown field';
  return undefined;
};

function fromZod(issues: readonly z.core.$ZodIssue[], input: unknown): PlanIssue[] {
  const out: PlanIssue[] = [];
  for (const iss of issues) {
    if (iss.code === 'unrecognized_keys') {
      // One issue per key, and never the value: a misplaced `password:` is exactly what it holds.
      for (const key of iss.keys) out.push({ path: formatPath([...iss.path, key]), message: iss.message });
      continue;
    }
    out.push(makeIssue(iss.path, iss.message, valueAt(input, iss.path)));
  }
  return out;
}

function nonEmptyArray(v: unknown): boolean {
  return Array.isArray(v) && v.length > 0;
}

const ENDPOINT_ENGINES: Record<'source' | 'target', readonly string[]> = {
  source: ['postgres', 'mysql'],
  target: ['postgres'],
};

/**
 * Rules across fields, run on the input as given (defensively typed) so they are reported along
 * with field errors instead of appearing only after those are fixed.
 */
function crossFieldIssues(p: Record<string, unknown>, tablesGiven: Record<string, unknown> | undefined): PlanIssue[] {
  const out: PlanIssue[] = [];

  for (const side of ['source', 'target'] as const) {
    const ep = p[side];
    if (!isRecord(ep) || typeof ep.url !== 'string' || typeof ep.engine !== 'string') continue;
    if (!ENDPOINT_ENGINES[side].includes(ep.engine) || secretRefProblem(ep.url, 'url') !== null) continue;
    const problem = secretRefProblem(ep.url, 'url', ep.engine);
    if (problem) out.push(makeIssue([side, 'url'], problem, ep.url));
  }

  if (tablesGiven) {
    const given = (['include', 'exclude'] as const).filter((k) => nonEmptyArray(tablesGiven[k]));
    if (tablesGiven.mappings !== undefined && given.length > 0) {
      out.push({
        path: 'tables.mappings',
        message: `cannot be combined with ${given.map((k) => `tables.${k}`).join(' and ')}: give either include/exclude patterns or a DMS table mapping in tables.mappings, not both`,
      });
    }
    if (tablesGiven.mappings === undefined && Array.isArray(tablesGiven.include) && tablesGiven.include.length === 0) {
      out.push({ path: 'tables.include', message: 'expected at least one schema.table pattern (leave include out to select every table, %.%)' });
    }
  }

  const runner = p.runner ?? 'native';
  if (runner === 'aws' && p.aws === undefined) {
    out.push({ path: 'aws', message: 'required when runner is aws (at least aws.region)' });
  }
  if (runner === 'aws' && isRecord(p.aws) && p.aws.replicationInstance === undefined) {
    out.push({ path: 'aws.replicationInstance', message: 'required when runner is aws: the DMS replication instance to adopt or create ({ id, class })' });
  }
  // `region`, `rds` and `snsTopicArn` serve any runner; the DMS resources only the aws runner.
  if (runner === 'native' && isRecord(p.aws)) {
    for (const field of ['replicationInstance', 'cleanup'] as const) {
      if (p.aws[field] !== undefined) out.push({ path: `aws.${field}`, message: 'only used with runner: aws (set runner: aws, or remove it)' });
    }
  }

  const mappings = isRecord(p.tables) && isRecord(p.tables.mappings) ? p.tables.mappings : undefined;
  if (Array.isArray(p.keys) && mappings && Array.isArray(mappings.rules)) {
    out.push(...keysAlsoDefinedByRules(p.keys.map((k) => (isRecord(k) ? k : {})), mappings.rules));
  }

  const mode = p.mode ?? 'full-load';
  const cdc = p.cdc;
  if (isRecord(cdc) && cdc.startPosition !== undefined && (MODES as readonly unknown[]).includes(mode) && mode !== 'cdc') {
    out.push({
      path: 'cdc.startPosition',
      message: `only used with mode cdc (mode ${String(mode)} starts from the position of its own snapshot)`,
    });
  }
  return out;
}

function dedupe(issues: PlanIssue[]): PlanIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const key = `${i.path}\u0000${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Reads `tables.mappings: file:PATH` into the input; what goes wrong becomes an issue. */
function readMappingsFile(tables: Record<string, unknown>, opts: ParsePlanOptions, issues: PlanIssue[]): Record<string, unknown> {
  const ref = tables.mappings;
  if (typeof ref !== 'string') return tables;
  const copy: Record<string, unknown> = { ...tables };
  delete copy.mappings;
  const path = ref.startsWith('file:') ? ref.slice(5) : '';
  if (path === '') {
    issues.push(makeIssue(['tables', 'mappings'], 'expected file:PATH (an AWS DMS table-mapping JSON file) or the mapping itself', ref));
  } else if (!opts.readMappings) {
    issues.push({ path: 'tables.mappings', value: ref, message: `cannot read ${path} here: the table mapping must be read by the caller (the CLI) before the plan is parsed` });
  } else {
    try {
      copy.mappings = opts.readMappings(path);
    } catch (e) {
      // The reader's own words only (a JSON parser quotes the file's first characters).
      issues.push({ path: 'tables.mappings', value: ref, message: `cannot read ${path}: ${e instanceof MappingsUnreadable ? e.message : 'unreadable'}` });
    }
  }
  return copy;
}

export function parsePlan(input: unknown, opts: ParsePlanOptions = {}): ParsePlanResult {
  if (!isRecord(input)) {
    return { ok: false, issues: [makeIssue([], `expected a mapping of plan fields (${PLAN_FIELDS.join(', ')})`, input)] };
  }
  const issues: PlanIssue[] = [];
  const prepared: Record<string, unknown> = { ...input };
  const tablesGiven = isRecord(input.tables) ? input.tables : undefined;
  if (tablesGiven) prepared.tables = readMappingsFile(tablesGiven, opts, issues);

  const parsed = planInputSchema.safeParse(prepared, { error: fallbackErrors });
  if (!parsed.success) issues.push(...fromZod(parsed.error.issues, prepared));
  issues.push(...crossFieldIssues(prepared, tablesGiven));

  if (issues.length > 0 || !parsed.success) return { ok: false, issues: dedupe(issues) };
  return { ok: true, plan: completePlan(parsed.data) };
}

/**
 * Parses YAML then the plan. Syntax errors carry line and column but no source excerpt: the
 * broken line may well be the one holding a URL.
 */
export function parsePlanYaml(text: string, opts: ParsePlanOptions = {}): ParsePlanResult {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const where = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
        const reason = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?\s*$/, '');
        return { path: '(file)', message: `YAML syntax error${where}: ${reason}` };
      }),
    };
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (e) {
    return { ok: false, issues: [{ path: '(file)', message: `cannot read the YAML: ${e instanceof Error ? e.message : String(e)}` }] };
  }
  if (data === null || data === undefined) {
    return { ok: false, issues: [{ path: '(file)', message: `the file is empty: expected a mapping of plan fields (${PLAN_FIELDS.join(', ')})` }] };
  }
  return parsePlan(data, opts);
}

/** What a `readMappings` callback throws: its message says why, without the file's content. */
export class MappingsUnreadable extends Error {}

/** One line per issue: `plan.yaml: load.parallel: expected an integer from 1 to 64, got 0`. */
export function formatPlanIssues(issues: readonly PlanIssue[], file?: string): string {
  return issues
    .map((i) => {
      const message = i.message.replace(/\s*\n\s*/g, ' ');
      const wholeFile = i.path.startsWith('(');
      if (file !== undefined) return wholeFile ? `${file}: ${message}` : `${file}: ${i.path}: ${message}`;
      return `${i.path}: ${message}`;
    })
    .join('\n');
}
