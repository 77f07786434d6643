/**
 * The plan file's JSON Schema, for editors (yaml-language-server completes and checks a plan as it
 * is typed) and other tools. `dbferry schema` prints it; schema/plan.schema.json is it, committed
 * (test/unit/plan-json-schema.test.ts fails when the two differ and says how to regenerate).
 *
 * It is generated from the zod schema (plan-schema.ts, aws-schema.ts, dms-mapping-schema.ts), on
 * its input side: the plan as a person writes it, defaults not filled in. Descriptions and
 * defaults come from there. zod's refinements have no JSON form and the generator leaves them
 * out; the few that fit JSON Schema are restated below (patterns of references and table names,
 * non-empty lists, a key redesign's surrogateKey or references), as is what only the CLI lets a
 * plan say (`tables.mappings: file:PATH`) and the rules of a DMS table mapping, which the zod
 * schema checks by hand.
 *
 * Every plan parsePlan accepts, this schema accepts (the test checks it). Not the reverse: the
 * rules between fields (parse-plan.ts), a URL's password and scheme, the meaning of a DMS rule
 * (dms-mapping-schema.ts) and what this version cannot run yet (supported.ts) are `dbferry
 * check`'s alone.
 */
import { z } from 'zod';
import { selectionRuleSchema, transformationRuleSchema } from './dms-mapping-schema';
import { planInputSchema } from './plan-schema';
import { ENV_VAR_NAME, SECRET_ARN } from './secret-ref';

export type JsonSchema = z.core.JSONSchema.BaseSchema;

/** An identifier, not a download location: editors find the schema by the path or URL a plan names. */
export const PLAN_SCHEMA_ID = 'https://dbferry.dev/schema/plan.json';

const GENERATE = {
  target: 'draft-2020-12',
  io: 'input',
  // A transform or custom type added later becomes "anything" instead of an exception.
  unrepresentable: 'any',
} as const satisfies z.core.ToJSONSchemaParams;

/** The regular expression of `re` without its anchors, to be combined into a larger one. */
function inner(re: RegExp): string {
  return re.source.replace(/^\^/, '').replace(/\$$/, '');
}

/** env:VAR, file:PATH or aws-secret:ARN, as secretRefProblem accepts them. */
const REFERENCE = `env:${inner(ENV_VAR_NAME)}|file:[\\s\\S]+|aws-secret:${inner(SECRET_ARN)}`;
/** A connection URL: a reference, or an inline scheme://… URL (its password and scheme are checked by dbferry check). */
const URL_PATTERN = `^(?:${REFERENCE}|[A-Za-z][A-Za-z0-9+.-]*://[\\s\\S]*)$`;
const REFERENCE_PATTERN = `^(?:${REFERENCE})$`;

/** One name of a `schema.table` pattern as parseTablePattern reads it: "quoted" ("" is a quote), or unquoted up to the dot. */
const QUOTED = '"(?:[^"]|"")+"';
const TABLE_PATTERN = `^(?:${QUOTED}|[^."]+)\\.(?:${QUOTED}|[^."]+)$`;
/** One table: no % outside quotes. */
const ONE_TABLE = `^(?:${QUOTED}|[^."%]+)\\.(?:${QUOTED}|[^."%]+)$`;

/** The plan's JSON Schema (draft 2020-12). Pure: no I/O. */
export function planJsonSchema(): JsonSchema {
  const generated = z.toJSONSchema(planInputSchema, GENERATE);
  delete generated.$schema;
  const plan = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: PLAN_SCHEMA_ID,
    title: 'dbferry plan',
    description:
      'A dbferry migration plan: what to migrate, from where to where, and how. Reference: docs/plan.md. `dbferry check <plan>` checks more than this schema can (rules between fields, URLs, DMS rules).',
    ...generated,
  } satisfies JsonSchema;

  for (const side of ['source', 'target']) {
    const endpoint = prop(plan, side);
    prop(endpoint, 'url').pattern = URL_PATTERN;
    prop(prop(endpoint, 'tls'), 'ca').pattern = REFERENCE_PATTERN;
  }
  prop(prop(plan, 'alerts'), 'webhook').pattern = REFERENCE_PATTERN;

  const tables = prop(plan, 'tables');
  for (const list of ['include', 'exclude']) items(prop(tables, list)).pattern = TABLE_PATTERN;
  tables.properties!.mappings = mappingsAsWritten(prop(tables, 'mappings'));

  const key = items(prop(plan, 'keys'));
  prop(key, 'table').pattern = ONE_TABLE;
  key.anyOf = [{ required: ['surrogateKey'] }, { required: ['references'] }];
  const reference = items(prop(key, 'references'));
  prop(reference, 'parent').pattern = ONE_TABLE;
  prop(reference, 'on').minProperties = 1;
  return plan;
}

/** `tables.mappings` as a plan gives it: the document itself, or file:PATH (the CLI reads it, relative to the plan file). */
function mappingsAsWritten(generated: JsonSchema): JsonSchema {
  const { description, ...document } = generated;
  const rules = prop(document, 'rules');
  rules.minItems = 1;
  rules.items = ruleSchema();
  return {
    description,
    anyOf: [
      { type: 'string', pattern: '^file:[\\s\\S]+$', description: 'file:PATH: a JSON file holding the document, read by the CLI (a relative path starts at the plan file).' },
      document,
    ],
  };
}

/** One rule: zod dispatches on rule-type by hand (mappingRules); here `if`/`then` does. */
function ruleSchema(): JsonSchema {
  const byType = { selection: selectionRuleSchema, transformation: transformationRuleSchema };
  return {
    type: 'object',
    description: 'A selection or transformation rule, as AWS DMS reads it.',
    required: ['rule-type'],
    properties: {
      'rule-type': { type: 'string', enum: Object.keys(byType), description: 'selection or transformation (table-settings rules are not supported yet).' },
    },
    allOf: Object.entries(byType).map(([type, schema]) => {
      const then = z.toJSONSchema(schema, GENERATE);
      delete then.$schema;
      return { if: { required: ['rule-type'], properties: { 'rule-type': { const: type } } }, then };
    }),
  };
}

/** A property of a generated object schema; a renamed or moved field fails here, not silently. */
function prop(schema: JsonSchema, name: string): JsonSchema {
  const found = schema.properties?.[name];
  if (typeof found !== 'object') throw new Error(`plan JSON Schema: no property ${name}`);
  return found;
}

function items(schema: JsonSchema): JsonSchema {
  const found = schema.items;
  if (typeof found !== 'object' || Array.isArray(found)) throw new Error('plan JSON Schema: expected a list schema');
  return found;
}
