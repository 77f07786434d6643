/**
 * The plan's JSON Schema (plan/plan-json-schema.ts) against what it stands for: the committed
 * schema/plan.schema.json, the zod parser, the example plans and docs/plan.md.
 *
 * schema/plan.schema.json is generated, never edited by hand. After a change to the plan schema
 * (a field, a description, a default), regenerate it with
 *
 *     DBFERRY_WRITE_SCHEMA=1 npx jest test/unit/plan-json-schema.test.ts
 *
 * which rewrites the file from planJsonSchema() and then runs these tests against it; commit the
 * result. Without the variable, a file that differs from planJsonSchema() fails the first test.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Ajv2020, { type ErrorObject } from 'ajv/dist/2020';
import { parse as parseYaml } from 'yaml';
import {
  formatPath,
  parsePlan,
  parseTablePattern,
  planInputSchema,
  secretRefProblem,
  unsupportedFeatures,
  type ParsePlanOptions,
} from '../../plan';
import { planJsonSchema, type JsonSchema } from '../../plan/plan-json-schema';

const ROOT = join(__dirname, '..', '..');
const SCHEMA_FILE = join(ROOT, 'schema', 'plan.schema.json');
const DOCS_FILE = join(ROOT, 'docs', 'plan.md');
const REGENERATE = 'DBFERRY_WRITE_SCHEMA=1 npx jest test/unit/plan-json-schema.test.ts';

const fresh = `${JSON.stringify(planJsonSchema(), null, 2)}\n`;
if (process.env.DBFERRY_WRITE_SCHEMA === '1') {
  mkdirSync(dirname(SCHEMA_FILE), { recursive: true });
  writeFileSync(SCHEMA_FILE, fresh);
}

const schema = planJsonSchema();
// strict: an unknown keyword or format in the generated schema is an error, not silently ignored.
// (`anyOf: [{ required: [...] }]` naming properties declared beside it is standard JSON Schema.)
const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false, strictRequired: false });
const validatePlan = ajv.compile(schema);

/** Where each error points, as parsePlan writes paths (`load.parallel`, `keys[0].table`). */
function errorPaths(errors: readonly ErrorObject[]): string[] {
  return errors.map((e) => {
    const segments: (string | number)[] = e.instancePath
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
      .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    if (e.keyword === 'required') segments.push((e.params as { missingProperty: string }).missingProperty);
    if (e.keyword === 'additionalProperties') segments.push((e.params as { additionalProperty: string }).additionalProperty);
    return formatPath(segments);
  });
}

function schemaErrors(plan: unknown): string[] {
  return validatePlan(plan) ? [] : errorPaths(validatePlan.errors ?? []);
}

function expectSchemaAccepts(plan: unknown, what: string): void {
  const ok = validatePlan(plan);
  if (!ok) throw new Error(`${what}: the JSON Schema refuses it:\n${ajv.errorsText(validatePlan.errors, { separator: '\n' })}`);
}

const MAPPING = {
  rules: [{ 'rule-type': 'selection', 'rule-id': '1', 'rule-action': 'include', 'object-locator': { 'schema-name': 'shop', 'table-name': '%' } }],
};
/** `tables.mappings: file:…` as the CLI reads it; any file name gives a small valid mapping. */
const READ_MAPPINGS: ParsePlanOptions = { readMappings: () => MAPPING };

/** The plan is valid for dbferry: parsePlan accepts it and this version can run it. */
function expectDbferryAccepts(plan: unknown, what: string): void {
  const r = parsePlan(plan, READ_MAPPINGS);
  if (!r.ok) throw new Error(`${what}: parsePlan refuses it:\n${r.issues.map((i) => `${i.path}: ${i.message}`).join('\n')}`);
  const unsupported = unsupportedFeatures(r.plan);
  if (unsupported.length > 0) throw new Error(`${what}: not supported:\n${unsupported.map((i) => `${i.path}: ${i.message}`).join('\n')}`);
}

const minimal = {
  name: 'shop',
  source: { engine: 'postgres', url: 'env:SOURCE_URL' },
  target: { engine: 'postgres', url: 'env:TARGET_URL' },
};

type Json = Record<string, unknown>;

function isRecord(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The schema node at a property path. */
function props(node: JsonSchema, ...path: string[]): JsonSchema {
  return path.reduce<JsonSchema>((at, name) => {
    const next = at.properties?.[name];
    if (!isRecord(next)) throw new Error(`no property ${path.join('.')}`);
    return next;
  }, node);
}

function itemsOf(node: JsonSchema): JsonSchema {
  if (!isRecord(node.items)) throw new Error('not a list schema');
  return node.items;
}

function matches(pattern: unknown, value: string): boolean {
  return new RegExp(String(pattern), 'u').test(value);
}

// ---------------------------------------------------------------------------------------------

describe('schema/plan.schema.json', () => {
  test('is planJsonSchema() as generated now', () => {
    let committed: string;
    try {
      committed = readFileSync(SCHEMA_FILE, 'utf8');
    } catch {
      throw new Error(`schema/plan.schema.json is missing: generate it with ${REGENERATE}`);
    }
    if (committed === fresh) return;
    const a = committed.split('\n');
    const b = fresh.split('\n');
    const line = Array.from({ length: Math.max(a.length, b.length) }, (_, i) => i).find((i) => a[i] !== b[i]) ?? 0;
    throw new Error(
      `schema/plan.schema.json is stale (it differs from planJsonSchema() at line ${line + 1}):\n` +
        `  committed: ${a[line] ?? '(end of file)'}\n  generated: ${b[line] ?? '(end of file)'}\n` +
        `Regenerate it with ${REGENERATE} and commit it.`,
    );
  });

  test('is a draft 2020-12 schema with an id and a title', () => {
    expect(schema).toMatchObject({ $schema: 'https://json-schema.org/draft/2020-12/schema', $id: expect.any(String), title: 'dbferry plan' });
    expect(ajv.validateSchema(schema)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------

/** docs/plan.md's fenced blocks of one language. */
function fencedBlocks(markdown: string, lang: string): string[] {
  const out: string[] = [];
  const re = new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```$', 'gm');
  for (let m = re.exec(markdown); m; m = re.exec(markdown)) out.push(m[1]!);
  return out;
}

const docs = readFileSync(DOCS_FILE, 'utf8');
const docPlans = fencedBlocks(docs, 'yaml')
  .map((text) => parseYaml(text) as unknown)
  .filter(isRecord);
const examples = readdirSync(join(ROOT, 'examples'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => [f, parseYaml(readFileSync(join(ROOT, 'examples', f), 'utf8')) as unknown] as const);

describe('example plans', () => {
  test('there are examples in examples/ and docs/plan.md', () => {
    expect(examples.length).toBeGreaterThan(0);
    expect(docPlans.filter((p) => 'name' in p).length).toBeGreaterThanOrEqual(4);
  });

  test.each(examples)('examples/%s is valid for the JSON Schema and for dbferry', (file, plan) => {
    expectSchemaAccepts(plan, `examples/${file}`);
    expectDbferryAccepts(plan, `examples/${file}`);
  });

  test('every whole plan in docs/plan.md is valid for the JSON Schema and for dbferry', () => {
    for (const plan of docPlans.filter((p) => 'name' in p)) {
      expectSchemaAccepts(plan, `docs/plan.md, plan ${String(plan.name)}`);
      expectDbferryAccepts(plan, `docs/plan.md, plan ${String(plan.name)}`);
    }
  });

  test('every plan fragment in docs/plan.md is valid in a minimal plan', () => {
    for (const fragment of docPlans.filter((p) => !('name' in p))) {
      const plan = { ...minimal, ...fragment };
      const what = `docs/plan.md, the fragment with ${Object.keys(fragment).join(', ')}`;
      expectSchemaAccepts(plan, what);
      expectDbferryAccepts(plan, what);
    }
  });

  test('every table mapping in docs/plan.md is valid as tables.mappings', () => {
    const mappings = fencedBlocks(docs, 'json').map((text) => JSON.parse(text) as unknown);
    expect(mappings.length).toBeGreaterThan(0);
    for (const mapping of mappings) {
      const plan = { ...minimal, tables: { mappings: mapping } };
      expectSchemaAccepts(plan, 'docs/plan.md, a table mapping');
      expectDbferryAccepts(plan, 'docs/plan.md, a table mapping');
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('wrong plans are refused, naming the field', () => {
  const cases: [string, unknown, string][] = [
    ['an unknown mode', { ...minimal, mode: 'fast' }, 'mode'],
    ['an unknown runner', { ...minimal, runner: 'lambda' }, 'runner'],
    ['a missing source', { name: 'shop', target: minimal.target }, 'source'],
    ['a missing name', { source: minimal.source, target: minimal.target }, 'name'],
    ['a name with capitals', { ...minimal, name: 'Shop' }, 'name'],
    ['an unknown top-level field', { ...minimal, bogus: 1 }, 'bogus'],
    ['an unknown field in a section', { ...minimal, load: { paralel: 4 } }, 'load.paralel'],
    ['load.parallel 0', { ...minimal, load: { parallel: 0 } }, 'load.parallel'],
    ['load.parallel 65', { ...minimal, load: { parallel: 65 } }, 'load.parallel'],
    ['load.parallel as a string', { ...minimal, load: { parallel: '4' } }, 'load.parallel'],
    ['load.parallel 1.5', { ...minimal, load: { parallel: 1.5 } }, 'load.parallel'],
    ['tables.include not a list', { ...minimal, tables: { include: 'public.%' } }, 'tables.include'],
    ['a table pattern without a schema', { ...minimal, tables: { include: ['orders'] } }, 'tables.include[0]'],
    ['a source engine the plan does not know', { ...minimal, source: { engine: 'oracle', url: 'env:SOURCE_URL' } }, 'source.engine'],
    ['a url that is not a reference', { ...minimal, source: { engine: 'postgres', url: 'SOURCE_URL' } }, 'source.url'],
    ['a tls mode the plan does not know', { ...minimal, target: { ...minimal.target, tls: { mode: 'prefer' } } }, 'target.tls.mode'],
    ['a CA given inline', { ...minimal, target: { ...minimal.target, tls: { mode: 'require', ca: '-----BEGIN CERTIFICATE-----' } } }, 'target.tls.ca'],
    ['tables.mappings as a bare path', { ...minimal, tables: { mappings: 'mappings.json' } }, 'tables.mappings'],
    ['a key redesign with neither surrogateKey nor references', { ...minimal, keys: [{ table: 'shop.orders' }] }, 'keys[0]'],
    ['a key redesign of a % pattern', { ...minimal, keys: [{ table: 'shop.%', surrogateKey: { column: 'id', type: 'bigint' } }] }, 'keys[0].table'],
    ['a cdc slot with capitals', { ...minimal, cdc: { slot: 'Dbferry' } }, 'cdc.slot'],
    ['a negative lag threshold', { ...minimal, alerts: { lagSeconds: -1 } }, 'alerts.lagSeconds'],
    ['aws without a region', { ...minimal, aws: { cleanup: false } }, 'aws.region'],
    ['an RDS instance to create without storage', { ...minimal, aws: { region: 'eu-west-1', rds: { instanceId: 'db', create: { class: 'db.t4g.micro' } } } }, 'aws.rds.create.storageGb'],
    ['a replication instance id with capitals', { ...minimal, runner: 'aws', aws: { region: 'eu-west-1', replicationInstance: { id: 'Shop', class: 'dms.t3.medium' } } }, 'aws.replicationInstance.id'],
  ];

  test.each(cases)('%s', (_what, plan, path) => {
    const paths = schemaErrors(plan);
    expect(paths.length).toBeGreaterThan(0);
    // One of the errors names the field itself.
    expect(paths).toContain(path);
    // dbferry refuses it too, at the same place.
    const r = parsePlan(plan);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues.map((i) => i.path)).toContainEqual(expect.stringMatching(new RegExp(`^${path.replace(/[[\].]/g, '\\$&')}`)));
  });
});

// ---------------------------------------------------------------------------------------------

describe('consistency with the zod parser', () => {
  const representative: [string, unknown][] = [
    ['minimal', minimal],
    [
      'every native field',
      {
        name: 'shop-2',
        mode: 'full-load-and-cdc',
        runner: 'native',
        source: { engine: 'postgres', url: 'postgres://dbferry@db:5432/shop', auth: 'iam', tls: { mode: 'verify-full', ca: 'file:/etc/ssl/ca.pem' } },
        target: { engine: 'postgres', url: 'aws-secret:arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop-target', auth: 'password', tls: { mode: 'disable' }, createDatabase: false },
        tables: { include: ['public.%', '"my.schema"."Audit Log"', '"a""b".%'], exclude: ['public.tmp_%'] },
        keys: [
          { table: 'public.orders', surrogateKey: { column: 'id', type: 'uuid' } },
          { table: '"my.schema".items', references: [{ column: 'order_id', parent: 'public.orders', on: { order_no: 'order_no' } }] },
        ],
        objects: { grants: true },
        load: { parallel: 64, chunkRows: 1 },
        cdc: { slot: '_slot1', publication: 'pub' },
        validate: { checksums: false },
        alerts: { webhook: 'file:/run/secrets/webhook', lagSeconds: 0.5, slotWalGb: 1 },
        aws: { region: 'us-gov-west-1', rds: { instanceId: 'x', create: { class: 'db.t4g.micro', storageGb: 20, securityGroups: [] } }, snsTopicArn: 'arn:aws-us-gov:sns:us-gov-west-1:123456789012:t' },
      },
    ],
    ['a MySQL source in mode cdc from a GTID set', { ...minimal, mode: 'cdc', source: { engine: 'mysql', url: 'mariadb://u@h/shop' }, cdc: { startPosition: '0-1-1234', keylessTables: 'refuse' } }],
    [
      'runner aws with an inline mapping',
      {
        ...minimal,
        runner: 'aws',
        mode: 'cdc',
        cdc: { startPosition: '0/16B3748' },
        tables: {
          mappings: {
            rules: [
              { 'rule-type': 'selection', 'rule-id': 1, 'rule-action': 'explicit', 'object-locator': { 'schema-name': 'shop', 'table-name': 'orders', 'table-type': 'table' }, 'load-order': 1, filters: [] },
              {
                'rule-type': 'transformation',
                'rule-id': 2,
                'rule-target': 'table',
                'rule-action': 'define-primary-key',
                'object-locator': { 'schema-name': 'shop', 'table-name': 'orders' },
                'primary-key-def': { name: 'orders_pk', origin: 'primary-key', columns: ['order_no'] },
              },
              {
                'rule-type': 'transformation',
                'rule-id': 3,
                'rule-target': 'column',
                'rule-action': 'change-data-type',
                'object-locator': { 'schema-name': 'shop', 'table-name': 'orders', 'column-name': 'total', 'data-type': { type: 'int4' } },
                'data-type': { type: 'numeric', precision: 12, scale: 2 },
              },
              { 'rule-type': 'transformation', 'rule-id': 4, 'rule-target': 'column', 'rule-action': 'replace-prefix', 'object-locator': { 'schema-name': 'shop', 'table-name': '%', 'column-name': 'c_%' }, value: 'col_', 'old-value': 'c_' },
            ],
          },
        },
        aws: { region: 'eu-west-1', replicationInstance: { id: 'dbferry-shop', class: 'dms.t3.medium' }, cleanup: true },
      },
    ],
    ['tables.mappings from a file', { ...minimal, tables: { mappings: 'file:mappings.json', include: [] } }],
    ['mode dump-restore', { ...minimal, mode: 'dump-restore', load: { parallel: 1 } }],
    ['an empty alerts section', { ...minimal, alerts: {} }],
  ];

  test.each(representative)('a plan dbferry accepts is accepted by the JSON Schema: %s', (what, plan) => {
    const r = parsePlan(plan, READ_MAPPINGS);
    if (!r.ok) throw new Error(`${what}: parsePlan refuses it: ${JSON.stringify(r.issues)}`);
    expectSchemaAccepts(plan, what);
  });

  // The patterns restating zod's refinements (plan-json-schema.ts) against the code they restate.

  const PATTERNS = ['shop.orders', 'shop.%', '%.%', '"my.schema".orders', 'public."Audit Log"', '"a""b".c', '"".x', 'a."b', 'a."b"c', 'orders', 'a.b.c', '.a', 'a.', 'a"b.c', '"%".t', 'x.y%z', 'é.ü'];

  test('table patterns: the pattern accepts what parseTablePattern accepts, and nothing else', () => {
    const pattern = itemsOf(props(schema, 'tables', 'include')).pattern;
    for (const p of PATTERNS) expect([p, matches(pattern, p)]).toEqual([p, parseTablePattern(p).ok]);
  });

  test('one table (keys): no % outside quotes', () => {
    const pattern = props(itemsOf(props(schema, 'keys')), 'table').pattern;
    for (const p of PATTERNS) {
      const r = parseTablePattern(p);
      const one = r.ok && !('glob' in r.pattern.schema) && !('glob' in r.pattern.table);
      expect([p, matches(pattern, p)]).toEqual([p, one]);
    }
  });

  const REFERENCES = [
    'env:SOURCE_URL',
    'env:_X1',
    'env:1X',
    'env:',
    'file:/etc/x',
    'file:',
    'aws-secret:arn:aws:secretsmanager:eu-west-1:123456789012:secret:db/main-AbC',
    'aws-secret:arn:aws:secretsmanager:eu-west-1:1234:secret:x',
    'aws-secret:',
    'postgres://u@h/db',
    'postgres://u:pw@h/db',
    'mysql://h',
    'SOURCE_URL',
    'host=db user=u',
  ];

  test('ca and webhook: the pattern accepts exactly the references dbferry accepts', () => {
    const pattern = props(schema, 'alerts', 'webhook').pattern;
    expect(props(schema, 'source', 'tls', 'ca').pattern).toBe(pattern);
    for (const v of REFERENCES) expect([v, matches(pattern, v)]).toEqual([v, secretRefProblem(v, 'ca') === null]);
  });

  test('url: the pattern accepts every URL dbferry accepts', () => {
    const pattern = props(schema, 'source', 'url').pattern;
    for (const v of REFERENCES) if (secretRefProblem(v, 'url') === null) expect([v, matches(pattern, v)]).toEqual([v, true]);
    for (const v of ['SOURCE_URL', 'env:1X', 'file:', 'host=db user=u']) expect([v, matches(pattern, v)]).toEqual([v, false]);
  });
});

// ---------------------------------------------------------------------------------------------

/** Every property of the schema with its path (`load.parallel`, `keys[].surrogateKey.column`). */
function properties(node: JsonSchema, prefix = '', stopAt: readonly string[] = []): [string, JsonSchema, boolean][] {
  const out: [string, JsonSchema, boolean][] = [];
  const required = new Set(node.required ?? []);
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    if (!isRecord(child)) continue;
    const path = prefix ? `${prefix}.${name}` : name;
    out.push([path, child, required.has(name)]);
    if (stopAt.includes(path)) continue;
    out.push(...properties(child, path, stopAt));
    let items = child.items;
    let itemPath = `${path}[]`;
    while (isRecord(items)) {
      out.push(...properties(items, itemPath, stopAt));
      items = items.items;
      itemPath += '[]';
    }
  }
  return out;
}

const MAIN_FIELDS = ['source', 'target', 'mode', 'runner', 'tables', 'load', 'cdc', 'validate', 'alerts', 'aws', 'keys', 'objects'];

describe('descriptions and defaults', () => {
  test('the main fields have descriptions', () => {
    for (const field of MAIN_FIELDS) expect([field, typeof schema.properties?.[field]]).toEqual([field, 'object']);
    for (const field of MAIN_FIELDS) expect([field, (schema.properties![field] as JsonSchema).description]).toEqual([field, expect.stringMatching(/\w{3}/)]);
  });

  test('every property has a description, the rules of a table mapping included', () => {
    const rules = props(schema, 'tables', 'mappings').anyOf!.flatMap((branch) => (isRecord(branch) && branch.properties ? [branch as JsonSchema] : []));
    const ruleSchemas = rules.flatMap((m) => (itemsOf(props(m, 'rules')).allOf ?? []).map((b) => (b as { then: JsonSchema }).then));
    const all = [...properties(schema), ...ruleSchemas.flatMap((r) => properties(r, 'rule'))];
    const missing = all.filter(([, s]) => typeof s.description !== 'string' || s.description.length < 5).map(([p]) => p);
    expect(missing).toEqual([]);
  });

  test('defaults appear where zod has them', () => {
    // What zod fills into a plan that gives only the required fields of each section.
    const input = { ...minimal, alerts: {}, aws: { region: 'eu-west-1' } };
    const output = planInputSchema.parse(input) as Json;
    const defaults: [string, unknown][] = [];
    const walk = (given: unknown, got: Json, path: string[]) => {
      for (const [k, v] of Object.entries(got)) {
        const inGiven = isRecord(given) ? given[k] : undefined;
        if (isRecord(v) && Object.keys(v).length > 0) walk(inGiven, v, [...path, k]);
        else if (inGiven === undefined) defaults.push([[...path, k].join('.'), v]);
      }
    };
    walk(input, output, []);
    expect(defaults.map(([p]) => p)).toEqual(expect.arrayContaining(['runner', 'mode', 'load.parallel', 'validate.checksums', 'alerts.lagSeconds', 'aws.cleanup', 'target.createDatabase']));
    for (const [path, value] of defaults) expect([path, props(schema, ...path.split('.')).default]).toEqual([path, value]);
    expect(props(schema, 'runner').default).toBe('native');
    expect(props(schema, 'load', 'parallel').default).toBe(4);
  });
});

// ---------------------------------------------------------------------------------------------

/**
 * docs/plan.md documents every property of the schema: each has a row in one of its field tables
 * whose first cell names the path in backticks (`load.parallel`; source and target may share a
 * row). The row's default cell holds the default (or says "required"), and the row names every
 * allowed value. Below tables.mappings, the DMS rules are summarised, not listed field by field.
 */
describe('docs/plan.md', () => {
  const TOP = new Set(Object.keys(schema.properties ?? {}));
  const rows = docs
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => {
      const cells = line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
      const paths = [...cells[0]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!).filter((p) => TOP.has(p.split(/[.[]/)[0]!));
      return { line, cells, paths };
    })
    .filter((r) => r.paths.length > 0);
  const documented = properties(schema, '', ['tables.mappings']);

  test('has a row for every property of the schema', () => {
    const named = new Set(rows.flatMap((r) => r.paths));
    expect(documented.map(([p]) => p).filter((p) => !named.has(p))).toEqual([]);
  });

  test('names no field the schema lacks', () => {
    const known = new Set(documented.map(([p]) => p));
    expect(rows.flatMap((r) => r.paths).filter((p) => !known.has(p))).toEqual([]);
  });

  test('gives each default, says what is required, and names every allowed value', () => {
    for (const [path, node, required] of documented) {
      for (const row of rows.filter((r) => r.paths.includes(path))) {
        const defaultCell = row.cells[2] ?? '';
        if (required) expect([path, defaultCell]).toEqual([path, expect.stringContaining('required')]);
        const d = node.default;
        if (d !== undefined && !isRecord(d)) {
          const shown = typeof d === 'string' ? d : JSON.stringify(d);
          expect([path, defaultCell]).toEqual([path, expect.stringContaining(`\`${shown}\``)]);
        }
        for (const value of node.enum ?? []) expect([path, row.line]).toEqual([path, expect.stringContaining(`\`${String(value)}\``)]);
      }
    }
  });

  test('tells editors where the schema is, and how to print it', () => {
    expect(docs).toContain('# yaml-language-server: $schema=../schema/plan.schema.json');
    expect(docs).toContain('dbferry schema > plan.schema.json');
  });
});
