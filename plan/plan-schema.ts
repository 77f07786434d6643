/**
 * The plan file (PLAN.md) as a zod schema. Every field carries its own "expected …" message:
 * plan errors are read by people fixing YAML, and zod's generic texts do not say what a field
 * accepts. Checks that relate several fields live in parse-plan.ts, so that they are reported
 * together with field errors rather than only once everything else is valid.
 */
import { z } from 'zod';
import { awsSchema } from './aws-schema';
import { tableMappingSchema } from './dms-mapping-schema';
import { expected, nonEmptyString, oneOf, secretRef, strict } from './schema-messages';
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

/** The slot and publication a plan uses unless it names them. */
export function defaultCdcName(planName: string): string {
  return `dbferry_${planName.replace(/-/g, '_')}`;
}

const URL_HINT = 'a connection URL given by reference: env:VAR, file:PATH or aws-secret:ARN';
const URL_WHAT = 'a connection URL given by reference: env:VAR, file:PATH or aws-secret:ARN (or an inline URL without a password)';

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

const tls = strict(
  {
    mode: oneOf(TLS_MODES, TLS_MODES.join(', ')),
    ca: secretRef('ca', 'a reference to the CA bundle: env:VAR, file:PATH or aws-secret:ARN').optional(),
  },
  'a mapping with mode and ca',
).optional();

/** How the workers authenticate: the URL's password, or an RDS IAM token made per connection. */
const auth = oneOf(['password', 'iam'] as const, 'password or iam').default('password');

const source = strict(
  {
    engine: oneOf(SOURCE_ENGINES, 'postgres or mysql'),
    url: secretRef('url', URL_WHAT, URL_HINT),
    auth,
    tls,
  },
  'a mapping with engine, url, auth and tls',
  'the source database: engine and url',
);

const target = strict(
  {
    engine: oneOf(TARGET_ENGINES, 'postgres'),
    url: secretRef('url', URL_WHAT, URL_HINT),
    auth,
    tls,
    createDatabase: z.boolean(expected('true or false')).default(true),
  },
  'a mapping with engine, url, auth, tls and createDatabase',
  'the target database: engine and url',
);

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
        type: oneOf(['bigint', 'uuid'], 'its type: bigint (an identity) or uuid (gen_random_uuid())'),
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

const objects = strict(
  { grants: z.boolean(expected('true or false')).default(false) },
  'a mapping with grants',
).prefault({});

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
    /** MySQL source: tables without a primary key are refused for CDC unless matched by their whole row. */
    keylessTables: z.enum(['refuse', 'whole-row'], expected('refuse or whole-row')).optional(),
  },
  'a mapping with slot, publication, startPosition and keylessTables',
).prefault({});

const validate = strict({ checksums: z.boolean(expected('true or false')).default(true) }, 'a mapping with checksums').prefault({});

const alerts = strict(
  {
    webhook: secretRef('webhook', 'a reference to the webhook URL: env:VAR, file:PATH or aws-secret:ARN').optional(),
    lagSeconds: z.number(expected('a positive number of seconds')).positive(expected('a positive number of seconds')).default(60),
    slotWalGb: z.number(expected('a positive number of GB')).positive(expected('a positive number of GB')).default(10),
  },
  'a mapping with webhook, lagSeconds and slotWalGb',
).optional();

export const PLAN_FIELDS = ['name', 'mode', 'runner', 'source', 'target', 'tables', 'keys', 'objects', 'load', 'cdc', 'validate', 'alerts', 'aws'] as const;

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
    objects,
    load,
    cdc,
    validate,
    alerts,
    aws: awsSchema,
  },
  `a mapping of plan fields (${PLAN_FIELDS.join(', ')})`,
  'a plan',
);

export type PlanInput = z.input<typeof planInputSchema>;

type ParsedPlanInput = z.output<typeof planInputSchema>;

// Types of the plan, inferred from the schema (they cannot drift from what is validated).
export type TlsOptions = NonNullable<ParsedPlanInput['source']['tls']>;
export type SourceEndpoint = ParsedPlanInput['source'];
export type TargetEndpoint = ParsedPlanInput['target'];
export type KeySpec = ParsedPlanInput['keys'][number];
export type KeyReference = NonNullable<KeySpec['references']>[number];
export type LoadOptions = ParsedPlanInput['load'];
export type AlertOptions = NonNullable<ParsedPlanInput['alerts']>;
export type AwsOptions = NonNullable<ParsedPlanInput['aws']>;

/** Table selection once defaults are filled: patterns, or a DMS mapping (read from its file). */
export interface TablesSpec {
  /** `schema.table` patterns; empty when `mappings` is given. */
  include: string[];
  exclude: string[];
  mappings?: DmsTableMapping;
}

/** CDC options with the slot and publication names filled in. */
export type CdcOptions = Required<Pick<ParsedPlanInput['cdc'], 'slot' | 'publication'>> & Pick<ParsedPlanInput['cdc'], 'startPosition' | 'keylessTables'>;

/** A parsed plan with every default filled in. Plain data: it travels in workflow input. */
export type Plan = Omit<ParsedPlanInput, 'tables' | 'cdc'> & { tables: TablesSpec; cdc: CdcOptions };

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
    objects: p.objects,
    load: p.load,
    cdc: {
      slot: p.cdc.slot ?? cdcName,
      publication: p.cdc.publication ?? cdcName,
      ...(p.cdc.startPosition !== undefined ? { startPosition: p.cdc.startPosition } : {}),
      ...(p.cdc.keylessTables !== undefined ? { keylessTables: p.cdc.keylessTables } : {}),
    },
    validate: p.validate,
  };
  if (p.alerts) plan.alerts = p.alerts;
  if (p.aws) plan.aws = p.aws;
  return plan;
}

/** `objects.grants`; a plan recorded by a version before `objects` existed (a running migration's) asks for none. */
export function grantsAsked(plan: Plan): boolean {
  return (plan as { objects?: { grants?: boolean } }).objects?.grants === true;
}
