/**
 * The plan file (PLAN.md) as a zod schema. Every field carries its own "expected …" message:
 * plan errors are read by people fixing YAML, and zod's generic texts do not say what a field
 * accepts. Checks that relate several fields live in parse-plan.ts, so that they are reported
 * together with field errors rather than only once everything else is valid.
 */
import { z } from 'zod';
import { secretRefProblem, type SecretField } from './secret-ref';
import { parseTablePattern, type DmsTableMapping } from './table-selection';

export const MODES = ['full-load', 'full-load-and-cdc', 'cdc', 'dump-restore'] as const;
export const RUNNERS = ['native', 'aws'] as const;
export const SOURCE_ENGINES = ['postgres', 'mysql'] as const;
export const TARGET_ENGINES = ['postgres'] as const;
export const TLS_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;

export type Mode = (typeof MODES)[number];
export type Runner = (typeof RUNNERS)[number];
export type SourceEngine = (typeof SOURCE_ENGINES)[number];
export type TlsMode = (typeof TLS_MODES)[number];

export const PLAN_NAME = /^[a-z0-9][a-z0-9-]*$/;
export const PLAN_NAME_MAX = 50;
/** Unquoted PostgreSQL identifiers: slot names allow nothing else, and quoting is a trap. */
export const PG_IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

export interface TlsOptions {
  mode: TlsMode;
  /** Secret reference to the CA bundle. */
  ca?: string;
}

export interface SourceEndpoint {
  engine: SourceEngine;
  /** Secret reference (env:VAR, file:PATH) or an inline URL without a password. */
  url: string;
  tls?: TlsOptions;
}

export interface TargetEndpoint {
  engine: 'postgres';
  url: string;
  tls?: TlsOptions;
  createDatabase: boolean;
}

export interface TablesSpec {
  /** `schema.table` patterns; empty when `mappings` is given. */
  include: string[];
  exclude: string[];
  /** The DMS table-mapping document, already read (never `file:`). */
  mappings?: DmsTableMapping;
}

export interface KeyReference {
  column: string;
  parent: string;
  /** Child column → parent column. */
  on: Record<string, string>;
}

export interface KeySpec {
  table: string;
  surrogateKey?: { column: string; type: string };
  references?: KeyReference[];
}

export interface LoadOptions {
  parallel: number;
  chunkRows?: number;
}

export interface CdcOptions {
  slot: string;
  publication: string;
  startPosition?: string;
}

export interface AlertOptions {
  webhook?: string;
  lagSeconds: number;
  /** Alert when the CDC slot holds back more source WAL than this (GB). */
  slotWalGb: number;
}

export interface AwsOptions {
  region: string;
  rds?: {
    instanceId: string;
    create?: {
      class: string;
      engineVersion?: string;
      storageGb: number;
      subnetGroup?: string;
      securityGroups?: string[];
      parameterGroup?: string;
    };
  };
  replicationInstance?: { id: string; class: string };
  snsTopicArn?: string;
  cleanup: boolean;
}

/** A parsed plan with every default filled in. Plain data: it travels in workflow input. */
export interface Plan {
  name: string;
  mode: Mode;
  runner: Runner;
  source: SourceEndpoint;
  target: TargetEndpoint;
  tables: TablesSpec;
  keys: KeySpec[];
  load: LoadOptions;
  cdc: CdcOptions;
  validate: { checksums: boolean };
  alerts?: AlertOptions;
  aws?: AwsOptions;
}

/** The slot and publication a plan uses unless it names them. */
export function defaultCdcName(planName: string): string {
  return `dbferry_${planName.replace(/-/g, '_')}`;
}

// ---- message helpers -------------------------------------------------------------------------

type RawIssue = z.core.$ZodRawIssue;

/** Enums and literals report a missing value as invalid_value, not invalid_type. */
function isMissing(iss: RawIssue): boolean {
  return iss.input === undefined && iss.code !== 'unrecognized_keys';
}

function required(hint?: string): string {
  return hint ? `required (${hint})` : 'required';
}

/** Every failure of the schema reads "expected <what>"; the parser appends the value it got. */
function expected(what: string, requiredHint?: string) {
  return { error: (iss: RawIssue) => (isMissing(iss) ? required(requiredHint) : `expected ${what}`) };
}

function strict<T extends z.core.$ZodLooseShape>(shape: T, what: string, requiredHint?: string) {
  const fields = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (iss: RawIssue) => {
      if (iss.code === 'unrecognized_keys') return `unknown field (expected one of: ${fields})`;
      if (isMissing(iss)) return required(requiredHint);
      return `expected ${what}`;
    },
  });
}

function nonEmptyString(what: string, requiredHint?: string) {
  return z.string(expected(what, requiredHint)).min(1, expected(what));
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T, requiredHint?: string) {
  return z.enum(values, expected(`one of ${values.join(', ')}`, requiredHint));
}

function secretRef(field: SecretField, what: string, requiredHint?: string) {
  return z.string(expected(what, requiredHint)).superRefine((value, ctx) => {
    const problem = secretRefProblem(value, field);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });
}

const URL_HINT = 'a connection URL given by reference: env:VAR or file:PATH';
const URL_WHAT = 'a connection URL given by reference: env:VAR or file:PATH (or an inline URL without a password)';

const tableName = z.string(expected('schema.table', 'schema.table')).superRefine((value, ctx) => {
  const r = parseTablePattern(value);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.message });
  else if ('glob' in r.pattern.schema || 'glob' in r.pattern.table) {
    ctx.addIssue({ code: 'custom', message: 'expected one table (schema.table), not a % pattern' });
  }
});

const tablePattern = z.string(expected('a schema.table pattern (a string)')).superRefine((value, ctx) => {
  const r = parseTablePattern(value);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.message });
});

// ---- the schema -----------------------------------------------------------------------------

const tls = strict(
  {
    mode: oneOf(TLS_MODES, TLS_MODES.join(', ')),
    ca: secretRef('ca', 'a reference to the CA bundle: env:VAR or file:PATH').optional(),
  },
  'a mapping with mode and ca',
).optional();

const source = strict(
  {
    engine: oneOf(SOURCE_ENGINES, 'postgres or mysql'),
    url: secretRef('url', URL_WHAT, URL_HINT),
    tls,
  },
  'a mapping with engine, url and tls',
  'the source database: engine and url',
);

const target = strict(
  {
    engine: oneOf(TARGET_ENGINES, 'postgres'),
    url: secretRef('url', URL_WHAT, URL_HINT),
    tls,
    createDatabase: z.boolean(expected('true or false')).default(true),
  },
  'a mapping with engine, url, tls and createDatabase',
  'the target database: engine and url',
);

const objectLocator = strict(
  {
    'schema-name': nonEmptyString('a schema name (% is a wildcard)', 'a schema name'),
    'table-name': nonEmptyString('a table name (% is a wildcard)', 'a table name'),
    'table-type': z.literal('table', expected('table (views are not supported yet)')).optional(),
  },
  'a mapping with schema-name and table-name',
  'schema-name and table-name',
);

const ruleId = z.union([z.string(), z.number()], expected('a string or a number'));

export const selectionRuleSchema = strict(
  {
    'rule-type': z.literal('selection'),
    'rule-id': ruleId.optional(),
    'rule-name': ruleId.optional(),
    'rule-action': oneOf(['include', 'exclude', 'explicit'], 'include, exclude or explicit'),
    'object-locator': objectLocator,
    'load-order': z.number(expected('a number')).optional(),
    filters: z
      .array(z.unknown(), expected('a list'))
      .max(0, { error: 'not supported yet: selection rule filters (only whole tables are selected)' })
      .optional(),
  },
  'a selection rule',
);

/**
 * Rules are dispatched on `rule-type` by hand: a zod union would report every alternative's
 * failures for one wrong field.
 */
const mappingRules = z.array(z.unknown(), expected('a list of rules', 'a list of rules')).superRefine((rules, ctx) => {
  let selecting = 0;
  let valid = 0;
  rules.forEach((rule, i) => {
    const type = rule !== null && typeof rule === 'object' && !Array.isArray(rule) ? (rule as Record<string, unknown>)['rule-type'] : undefined;
    if (type === 'transformation' || type === 'table-settings') {
      ctx.addIssue({ code: 'custom', path: [i], message: `not supported yet: ${type} rules (only selection rules are)` });
      return;
    }
    if (rule === null || typeof rule !== 'object' || Array.isArray(rule)) {
      ctx.addIssue({ code: 'custom', path: [i], message: 'expected a rule (a mapping with rule-type, rule-id, rule-action, object-locator)' });
      return;
    }
    if (type !== 'selection') {
      ctx.addIssue({
        code: 'custom',
        path: [i, 'rule-type'],
        message: `${type === undefined ? 'required' : 'expected'} selection (transformation and table-settings rules are not supported yet)`,
      });
      return;
    }
    const r = selectionRuleSchema.safeParse(rule);
    if (!r.success) {
      for (const iss of r.error.issues) {
        const base = [i, ...iss.path];
        if (iss.code === 'unrecognized_keys') {
          for (const key of iss.keys) ctx.addIssue({ code: 'custom', path: [...base, key], message: iss.message });
        } else {
          ctx.addIssue({ code: 'custom', path: base, message: iss.message });
        }
      }
      return;
    }
    const loc = r.data['object-locator'];
    if (r.data['rule-action'] === 'explicit') {
      for (const key of ['schema-name', 'table-name'] as const) {
        if (loc[key].includes('%')) {
          ctx.addIssue({ code: 'custom', path: [i, 'object-locator', key], message: 'expected an exact name: an explicit rule selects one table, without % wildcards' });
        }
      }
    }
    valid++;
    if (r.data['rule-action'] !== 'exclude') selecting++;
  });
  // Only judged when every rule is valid: a broken include rule would make this message wrong.
  if (rules.length === 0) ctx.addIssue({ code: 'custom', message: 'expected at least one selection rule' });
  else if (selecting === 0 && valid === rules.length) {
    ctx.addIssue({ code: 'custom', message: 'expected at least one selection rule with rule-action include or explicit (exclude rules alone select nothing)' });
  }
});

export const tableMappingSchema = strict({ rules: mappingRules }, 'an AWS DMS table-mapping document ({"rules": [...]})');

const tables = strict(
  {
    include: z.array(tablePattern, expected('a list of schema.table patterns')).optional(),
    exclude: z.array(tablePattern, expected('a list of schema.table patterns')).optional(),
    mappings: tableMappingSchema.optional(),
  },
  'a mapping with include/exclude or mappings',
).prefault({});

const keySpec = strict(
  {
    table: tableName,
    surrogateKey: strict(
      {
        column: nonEmptyString('a column name', 'the new key column'),
        type: nonEmptyString('a SQL type, e.g. bigint', 'its SQL type, e.g. bigint'),
      },
      'a mapping with column and type',
    ).optional(),
    references: z
      .array(
        strict(
          {
            column: nonEmptyString('a column name', 'the referencing column to add'),
            parent: tableName,
            on: z
              .record(z.string(), z.string(expected('a parent column name')), expected('a mapping of child column: parent column', 'child column: parent column pairs'))
              .refine((on) => Object.keys(on).length > 0, { error: 'expected at least one child column: parent column pair' }),
          },
          'a mapping with column, parent and on',
        ),
        expected('a list'),
      )
      .optional(),
  },
  'a mapping with table, surrogateKey and references',
).refine((k) => k.surrogateKey !== undefined || k.references !== undefined, {
  error: 'needs surrogateKey or references (an entry with neither changes nothing)',
});

const load = strict(
  {
    parallel: z
      .int(expected('an integer from 1 to 64'))
      .min(1, expected('an integer from 1 to 64'))
      .max(64, expected('an integer from 1 to 64'))
      .default(4),
    chunkRows: z.int(expected('a positive integer')).positive(expected('a positive integer')).optional(),
  },
  'a mapping with parallel and chunkRows',
).prefault({});

const pgIdentifier = z
  .string(expected('a PostgreSQL identifier (lowercase letters, digits, _; at most 63)'))
  .regex(PG_IDENTIFIER, expected('a PostgreSQL identifier (lowercase letters, digits, _; not starting with a digit; at most 63)'));

const cdc = strict(
  {
    slot: pgIdentifier.optional(),
    publication: pgIdentifier.optional(),
    startPosition: nonEmptyString('a position: an LSN (0/16B3748), file:pos or a GTID set').optional(),
  },
  'a mapping with slot, publication and startPosition',
).prefault({});

const validate = strict({ checksums: z.boolean(expected('true or false')).default(true) }, 'a mapping with checksums').prefault({});

const alerts = strict(
  {
    webhook: secretRef('webhook', 'a reference to the webhook URL: env:VAR or file:PATH').optional(),
    lagSeconds: z.number(expected('a positive number of seconds')).positive(expected('a positive number of seconds')).default(60),
    slotWalGb: z.number(expected('a positive number of GB')).positive(expected('a positive number of GB')).default(10),
  },
  'a mapping with webhook, lagSeconds and slotWalGb',
).optional();

const awsName = (what: string, requiredHint?: string) => nonEmptyString(what, requiredHint);

const aws = strict(
  {
    region: z
      .string(expected('an AWS region, e.g. eu-west-1', 'an AWS region, e.g. eu-west-1'))
      .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, expected('an AWS region, e.g. eu-west-1')),
    rds: strict(
      {
        instanceId: awsName('an RDS instance identifier', 'the RDS instance identifier'),
        create: strict(
          {
            class: awsName('an instance class, e.g. db.r6g.large', 'an instance class, e.g. db.r6g.large'),
            engineVersion: awsName('a version string, e.g. "16.4" (quote it in YAML)').optional(),
            storageGb: z.int(expected('a positive integer', 'storage in GB')).positive(expected('a positive integer')),
            subnetGroup: awsName('a DB subnet group name').optional(),
            securityGroups: z.array(awsName('a security group id'), expected('a list of security group ids')).optional(),
            parameterGroup: awsName('a DB parameter group name').optional(),
          },
          'a mapping with class, engineVersion, storageGb, subnetGroup, securityGroups, parameterGroup',
        ).optional(),
      },
      'a mapping with instanceId and create',
    ).optional(),
    replicationInstance: strict(
      {
        id: awsName('a replication instance identifier', 'the replication instance identifier'),
        class: awsName('a replication instance class, e.g. dms.t3.medium', 'a class, e.g. dms.t3.medium'),
      },
      'a mapping with id and class',
    ).optional(),
    snsTopicArn: z
      .string(expected('an SNS topic ARN'))
      .regex(/^arn:aws[a-z-]*:sns:/, expected('an SNS topic ARN (arn:aws:sns:…)'))
      .optional(),
    cleanup: z.boolean(expected('true or false')).default(false),
  },
  'a mapping with region, rds, replicationInstance, snsTopicArn and cleanup',
).optional();

export const PLAN_FIELDS = ['name', 'mode', 'runner', 'source', 'target', 'tables', 'keys', 'load', 'cdc', 'validate', 'alerts', 'aws'] as const;

const NAME_WHAT = `a name of lowercase letters, digits and - (starting with a letter or digit, at most ${PLAN_NAME_MAX} characters)`;

/**
 * The plan as written (after `tables.mappings: file:` has been read). Its output still lacks
 * the defaults that depend on other fields; parsePlan fills those in.
 */
export const planInputSchema = strict(
  {
    name: z
      .string(expected(NAME_WHAT, `the migration's name; the workflow id is migration-<name>`))
      .regex(PLAN_NAME, expected(NAME_WHAT))
      .max(PLAN_NAME_MAX, expected(NAME_WHAT)),
    mode: oneOf(MODES).default('full-load'),
    runner: oneOf(RUNNERS).default('native'),
    source,
    target,
    tables,
    keys: z.array(keySpec, expected('a list of key redesigns')).default([]),
    load,
    cdc,
    validate,
    alerts,
    aws,
  },
  `a mapping of plan fields (${PLAN_FIELDS.join(', ')})`,
  'a plan',
);

export type PlanInput = z.input<typeof planInputSchema>;
type ParsedPlanInput = z.output<typeof planInputSchema>;

/** Fills the defaults that depend on other fields. */
export function completePlan(p: ParsedPlanInput): Plan {
  const cdcName = defaultCdcName(p.name);
  const mappings = p.tables.mappings as DmsTableMapping | undefined;
  const plan: Plan = {
    name: p.name,
    mode: p.mode,
    runner: p.runner,
    source: p.source,
    target: p.target,
    tables: mappings
      ? { include: [], exclude: [], mappings }
      : { include: p.tables.include ?? ['%.%'], exclude: p.tables.exclude ?? [] },
    keys: p.keys,
    load: p.load,
    cdc: {
      slot: p.cdc.slot ?? cdcName,
      publication: p.cdc.publication ?? cdcName,
      ...(p.cdc.startPosition !== undefined ? { startPosition: p.cdc.startPosition } : {}),
    },
    validate: p.validate,
  };
  if (p.alerts) plan.alerts = p.alerts;
  if (p.aws) plan.aws = p.aws;
  return plan;
}
