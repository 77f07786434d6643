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
    mode: oneOf(TLS_MODES, TLS_MODES.join(', ')).describe(
      'disable (no TLS), require (encrypted, certificate not checked), verify-ca (certificate checked against the CA) or verify-full (certificate and host name checked). With runner aws, also the DMS endpoint\'s SSL mode.',
    ),
    ca: secretRef('ca', 'a reference to the CA bundle: env:VAR, file:PATH or aws-secret:ARN')
      .describe('The CA bundle (PEM) that signed the server\'s certificate, by reference: env:VAR, file:PATH or aws-secret:ARN. Optional: without it the workers trust Node.js\'s default CAs.')
      .optional(),
  },
  'a mapping with mode and ca',
)
  .describe('TLS for dbferry\'s connections to this database: mode and ca. Optional: without it dbferry sets up no TLS.')
  .optional();

/** How the workers authenticate: the URL's password, or an RDS IAM token made per connection. */
const auth = oneOf(['password', 'iam'] as const, 'password or iam')
  .default('password')
  .describe('How the workers log in: password (the URL\'s) or iam (an RDS IAM token made for each connection; the URL names the user without a password; needs tls; runner native only).');

const URL_DESCRIPTION = (example: string) =>
  `The connection URL (${example}), by reference: env:VAR, file:PATH or aws-secret:ARN, resolved by the workers; an inline URL is accepted only without a password.`;

const source = strict(
  {
    engine: oneOf(SOURCE_ENGINES, 'postgres or mysql').describe('The source\'s engine: postgres (PostgreSQL) or mysql (MySQL and MariaDB).'),
    url: secretRef('url', URL_WHAT, URL_HINT).describe(
      URL_DESCRIPTION('postgres://user:password@host:5432/database or mysql://user:password@host:3306/database'),
    ),
    auth,
    tls,
  },
  'a mapping with engine, url, auth and tls',
  'the source database: engine and url',
).describe('The database to migrate from: engine, url, auth and tls.');

const target = strict(
  {
    engine: oneOf(TARGET_ENGINES, 'postgres').describe('The target\'s engine: postgres.'),
    url: secretRef('url', URL_WHAT, URL_HINT).describe(
      `${URL_DESCRIPTION('postgres://user:password@host:5432/database')} With aws.rds, the instance's endpoint replaces its host.`,
    ),
    auth,
    tls,
    createDatabase: z
      .boolean(expected('true or false'))
      .default(true)
      .describe('true: create the database the target URL names when it is missing; false: a missing database is an error.'),
  },
  'a mapping with engine, url, auth, tls and createDatabase',
  'the target database: engine and url',
).describe('The PostgreSQL database to migrate into: engine, url, auth, tls and createDatabase.');

const tables = strict(
  {
    include: z
      .array(tablePattern, expected('a list of schema.table patterns'))
      .describe(
        'The tables to migrate: a non-empty list of schema.table patterns (MySQL: database.table), % matching any text, "quoted" parts matched exactly. Default: every table (%.%; a MySQL source: the database its URL names).',
      )
      .optional(),
    exclude: z
      .array(tablePattern, expected('a list of schema.table patterns'))
      .describe('Tables left out of those include selects: a list of schema.table patterns. Default: none.')
      .optional(),
    mappings: tableMappingSchema
      .describe('An AWS DMS table-mapping document ({"rules": [...]}: selection and transformation rules), inline or as file:PATH (a JSON file the CLI reads, relative to the plan file). Not together with include or exclude.')
      .optional(),
  },
  'a mapping with include/exclude or mappings',
)
  .prefault({})
  .describe('Which tables migrate: include/exclude patterns, or a DMS table mapping in mappings (not both).');

const keySpec = strict(
  {
    table: tableName.describe('The table to redesign: one schema.table (no % pattern), a selected table.'),
    surrogateKey: strict(
      {
        column: nonEmptyString('a column name', 'the new key column').describe('The new key column\'s name: it becomes the table\'s first column.'),
        type: oneOf(['bigint', 'uuid'], 'its type: bigint (an identity) or uuid (gen_random_uuid())').describe(
          'bigint (GENERATED BY DEFAULT AS IDENTITY) or uuid (DEFAULT gen_random_uuid()).',
        ),
      },
      'a mapping with column and type',
    )
      .describe('A new primary key column: {column, type}. The source\'s key stays as a unique constraint.')
      .optional(),
    references: z
      .array(
        strict(
          {
            column: nonEmptyString('a column name', 'the referencing column to add').describe(
              'The column to add to this table: it holds the parent\'s surrogate key and references it.',
            ),
            parent: tableName.describe('The parent table: one schema.table with a surrogateKey in keys.'),
            on: z
              .record(z.string(), z.string(expected('a parent column name')), expected('a mapping of child column: parent column', 'child column: parent column pairs'))
              .refine((on) => Object.keys(on).length > 0, { error: 'expected at least one child column: parent column pair' })
              .describe('How a row finds its parent: child column: parent column pairs, which must be the parent\'s source key.'),
          },
          'a mapping with column, parent and on',
        ),
        expected('a list'),
      )
      .describe('New foreign keys to parents given a surrogate key: a list of {column, parent, on}.')
      .optional(),
  },
  'a mapping with table, surrogateKey and references',
)
  .refine((k) => k.surrogateKey !== undefined || k.references !== undefined, {
    error: 'needs surrogateKey or references (an entry with neither changes nothing)',
  })
  .describe('One table\'s key redesign: table, with surrogateKey, references or both.');

const objects = strict(
  {
    grants: z
      .boolean(expected('true or false'))
      .default(false)
      .describe('true: copy GRANTs too (the roles must exist on the target); false: no grants are copied.'),
  },
  'a mapping with grants',
)
  .prefault({})
  .describe('PostgreSQL sources: schema objects beyond tables (views, functions, triggers, policies, comments...) always migrate; grants only when asked.');

const load = strict(
  {
    parallel: z
      .int(expected('an integer from 1 to 64'))
      .min(1, expected('an integer from 1 to 64'))
      .max(64, expected('an integer from 1 to 64'))
      .default(4)
      .describe(
        'An integer from 1 to 64: how many tables (or chunks) load at once, and how many index builds and table validations run at once. Mode dump-restore: pg_dump -j and pg_restore -j.',
      ),
    chunkRows: z
      .int(expected('a positive integer'))
      .positive(expected('a positive integer'))
      .describe(
        'Runner native: a positive integer; a table of more than 1.5 times this many rows loads in chunks of about this many rows (primary-key ranges, or page ranges without a key; MySQL: integer keys only). Default: every table loads whole.',
      )
      .optional(),
    pipelined: z
      .boolean(expected('true or false'))
      .default(false)
      .describe(
        'Runner native: true: a loader that finished a table builds its keys and indexes (and ANALYZEs it) while other tables still copy; pays when the target has cores to spare. false: they are built after the whole load.',
      ),
  },
  'a mapping with parallel, chunkRows and pipelined',
)
  .prefault({})
  .describe('How much runs at once (parallel) and how tables are split (chunkRows).');

const pgIdentifier = z
  .string(expected('a PostgreSQL identifier (lowercase letters, digits, _; at most 63)'))
  .regex(PG_IDENTIFIER, expected('a PostgreSQL identifier (lowercase letters, digits, _; not starting with a digit; at most 63)'));

const cdc = strict(
  {
    slot: pgIdentifier
      .describe('PostgreSQL source: the logical replication slot dbferry creates, a lowercase identifier (letters, digits, _; at most 63). Default: dbferry_<name> (- becomes _).')
      .optional(),
    publication: pgIdentifier
      .describe('PostgreSQL source: the publication CDC reads, created for the selected tables, or an existing one used as it is. Default: dbferry_<name> (- becomes _).')
      .optional(),
    startPosition: nonEmptyString('a position: an LSN (0/16B3748), file:pos or a GTID set')
      .describe(
        'Mode cdc only: where CDC starts. PostgreSQL: an LSN (0/16B3748); MySQL: a binlog file:offset (binlog.000012:4567) or a GTID set (0-1-1234). Default: from now.',
      )
      .optional(),
    /** MySQL source: tables without a primary key are refused for CDC unless matched by their whole row. */
    keylessTables: z
      .enum(['refuse', 'whole-row'], expected('refuse or whole-row'))
      .describe('MySQL source: CDC of tables without a primary key. refuse (the default: check blocks on them) or whole-row (changes find their row by all its values).')
      .optional(),
    streaming: z
      .boolean(expected('true or false'))
      .describe(
        'PostgreSQL 14+ source: true (the default) applies a transaction larger than the source\'s logical_decoding_work_mem while it runs, in its own target transaction committed in commit order; false applies it after its commit (the source spills it to disk meanwhile).',
      )
      .optional(),
  },
  'a mapping with slot, publication, startPosition, keylessTables and streaming',
)
  .prefault({})
  .describe('Change data capture (modes full-load-and-cdc and cdc): slot, publication, startPosition, keylessTables and streaming.');

const validate = strict(
  {
    checksums: z
      .boolean(expected('true or false'))
      .default(true)
      .describe('true: compare a checksum of every table\'s rows too; false: row counts only.'),
    readSourceOnce: z
      .boolean(expected('true or false'))
      .default(false)
      .describe(
        'Mode full-load, PostgreSQL source, checksums on. true: each loader sums the rows as they stream through it, so the source is read once, and validation sums a COPY of the target\'s rows the same way (more work on the target and the worker). false: each table is summed on the source in the load snapshot after its COPY, and on the target by the same query.',
      ),
  },
  'a mapping with checksums and readSourceOnce',
)
  .prefault({})
  .describe('How the target is compared with the source: row counts always, checksums unless turned off; readSourceOnce spares the source its second scan.');

const alerts = strict(
  {
    webhook: secretRef('webhook', 'a reference to the webhook URL: env:VAR, file:PATH or aws-secret:ARN')
      .describe('The URL dbferry POSTs alerts to (JSON with a Slack-compatible text), by reference: env:VAR, file:PATH or aws-secret:ARN (the URL carries a token).')
      .optional(),
    lagSeconds: z
      .number(expected('a positive number of seconds'))
      .positive(expected('a positive number of seconds'))
      .default(60)
      .describe('Alert when CDC is more than this many seconds behind the source: a positive number.'),
    slotWalGb: z
      .number(expected('a positive number of GB'))
      .positive(expected('a positive number of GB'))
      .default(10)
      .describe('Alert when the source holds more than this many GB for CDC (a PostgreSQL slot\'s WAL, MySQL binlog not yet applied): a positive number; runner native.'),
  },
  'a mapping with webhook, lagSeconds and slotWalGb',
)
  .describe('Where alerts go (webhook; aws.snsTopicArn too) and the CDC thresholds that raise them. Optional.')
  .optional();

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
      .max(PLAN_NAME_MAX, expected(NAME_WHAT))
      .describe(
        `The migration's name: lowercase letters, digits and -, starting with a letter or digit, at most ${PLAN_NAME_MAX} characters. The workflow id is migration-<name>.`,
      ),
    mode: oneOf(MODES)
      .default('full-load')
      .describe(
        'full-load (copy once), full-load-and-cdc (copy, then apply changes until cutover), cdc (changes only, into tables loaded some other way) or dump-restore (pg_dump and pg_restore; PostgreSQL to PostgreSQL, runner native).',
      ),
    runner: oneOf(RUNNERS)
      .default('native')
      .describe('What moves the rows: native (dbferry\'s workers) or aws (AWS DMS; needs aws.region and aws.replicationInstance; not with mode dump-restore).'),
    source,
    target,
    tables,
    keys: z
      .array(keySpec, expected('a list of key redesigns'))
      .default([])
      .describe('Key redesign (modes full-load and full-load-and-cdc): a list of {table, surrogateKey, references}.'),
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
export type CdcOptions = Required<Pick<ParsedPlanInput['cdc'], 'slot' | 'publication'>> & Pick<ParsedPlanInput['cdc'], 'startPosition' | 'keylessTables' | 'streaming'>;

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
      ...(p.cdc.streaming !== undefined ? { streaming: p.cdc.streaming } : {}),
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
