import {
  compileSelection,
  describeEndpoint,
  formatPlanIssues,
  grantsAsked,
  MappingsUnreadable,
  parsePlan,
  parsePlanYaml,
  parseSecretRef,
  parseTablePattern,
  redactUrl,
  unsupportedFeatures,
  type Plan,
  type PlanIssue,
} from '../../plan';
import { migrationWorkflowId } from '../../workflows/search-attributes';

const minimal = {
  name: 'shop',
  source: { engine: 'postgres', url: 'env:SOURCE_URL' },
  target: { engine: 'postgres', url: 'env:TARGET_URL' },
};

/** `minimal` with `patch` merged one level deep (a section in the patch replaces fields in it). */
function plan(patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...minimal };
  for (const [k, v] of Object.entries(patch)) {
    const base = (out as Record<string, unknown>)[k];
    out[k] = base && typeof base === 'object' && v && typeof v === 'object' && !Array.isArray(v) ? { ...base, ...v } : v;
  }
  return out;
}

function issuesOf(input: unknown, opts?: Parameters<typeof parsePlan>[1]): PlanIssue[] {
  const r = parsePlan(input, opts);
  if (r.ok) throw new Error(`expected the plan to be refused: ${JSON.stringify(input)}`);
  return r.issues;
}

function ok(input: unknown, opts?: Parameters<typeof parsePlan>[1]): Plan {
  const r = parsePlan(input, opts);
  if (!r.ok) throw new Error(formatPlanIssues(r.issues));
  return r.plan;
}

function expectIssue(input: unknown, path: string, message: string, opts?: Parameters<typeof parsePlan>[1]): PlanIssue[] {
  const issues = issuesOf(input, opts);
  expect(issues).toContainEqual(expect.objectContaining({ path, message: expect.stringContaining(message) }));
  return issues;
}

describe('parsePlan: a valid plan', () => {
  test('a minimal plan gets every default', () => {
    expect(ok(minimal)).toEqual({
      name: 'shop',
      mode: 'full-load',
      runner: 'native',
      source: { engine: 'postgres', url: 'env:SOURCE_URL', auth: 'password' },
      target: { engine: 'postgres', url: 'env:TARGET_URL', auth: 'password', createDatabase: true },
      tables: { include: ['%.%'], exclude: [] },
      keys: [],
      objects: { grants: false },
      load: { parallel: 4, pipelined: false },
      cdc: { slot: 'dbferry_shop', publication: 'dbferry_shop' },
      validate: { checksums: true, readSourceOnce: false },
    });
  });

  test('default slot and publication replace - by _', () => {
    const p = ok({ ...minimal, name: 'shop-eu-2' });
    expect(p.cdc).toEqual({ slot: 'dbferry_shop_eu_2', publication: 'dbferry_shop_eu_2' });
  });

  test('the full PLAN.md example (with one of include/mappings, runner aws) parses', () => {
    const p = ok({
      name: 'shop',
      mode: 'full-load-and-cdc',
      runner: 'aws',
      source: { engine: 'mysql', url: 'env:SOURCE_URL', tls: { mode: 'verify-full', ca: 'file:/etc/ssl/rds-ca.pem' } },
      target: { engine: 'postgres', url: 'env:TARGET_URL', createDatabase: true },
      tables: { include: ['shop.%'], exclude: ['shop.tmp_%'] },
      keys: [
        { table: 'shop.orders', surrogateKey: { column: 'id', type: 'bigint' } },
        {
          table: 'shop.order_items',
          references: [{ column: 'order_id', parent: 'shop.orders', on: { customer_id: 'customer_id', order_no: 'order_no' } }],
        },
      ],
      load: { parallel: 4 },
      cdc: { slot: 'dbferry_shop', publication: 'dbferry_shop' },
      validate: { checksums: true },
      alerts: { webhook: 'env:ALERT_WEBHOOK_URL', lagSeconds: 60 },
      aws: {
        region: 'eu-west-1',
        rds: {
          instanceId: 'shop-target',
          create: {
            class: 'db.r6g.large',
            engineVersion: '16.4',
            storageGb: 200,
            subnetGroup: 'default',
            securityGroups: ['sg-0abc'],
            parameterGroup: 'dbferry-pg16',
          },
        },
        replicationInstance: { id: 'dbferry-shop', class: 'dms.t3.medium' },
        snsTopicArn: 'arn:aws:sns:eu-west-1:123456789012:dbferry',
        cleanup: false,
      },
    });
    expect(p.source.tls).toEqual({ mode: 'verify-full', ca: 'file:/etc/ssl/rds-ca.pem' });
    expect(p.aws?.rds?.create?.storageGb).toBe(200);
    expect(p.keys).toHaveLength(2);
  });

  test('an inline URL without a password is accepted as it is', () => {
    const p = ok(plan({ source: { url: 'postgres://app@db.internal:5432/shop' } }));
    expect(p.source.url).toBe('postgres://app@db.internal:5432/shop');
  });

  test('alerts get lagSeconds 60 by default; aws cleanup false', () => {
    const replicationInstance = { id: 'dbferry-shop', class: 'dms.t3.medium' };
    const p = ok(plan({ alerts: { webhook: 'file:/run/secrets/hook' }, runner: 'aws', aws: { region: 'us-east-1', replicationInstance } }));
    expect(p.alerts).toEqual({ webhook: 'file:/run/secrets/hook', lagSeconds: 60, slotWalGb: 10 });
    expect(p.aws).toEqual({ region: 'us-east-1', replicationInstance, cleanup: false });
  });

  test('a parsed plan parses again to itself (it travels through workflow input)', () => {
    const p1 = ok(plan({ tables: { mappings: { rules: [selection('1', 'include', 'shop', '%')] } } }));
    expect(ok(p1)).toEqual(p1);
    const p2 = ok(plan({ mode: 'cdc', cdc: { startPosition: '0/16B3748' }, load: { chunkRows: 100000 } }));
    expect(ok(p2)).toEqual(p2);
  });

  test('migrationWorkflowId', () => {
    expect(migrationWorkflowId('shop')).toBe('migration-shop');
  });
});

function selection(id: string, action: string, schema: string, table: string): Record<string, unknown> {
  return {
    'rule-type': 'selection',
    'rule-id': id,
    'rule-name': id,
    'object-locator': { 'schema-name': schema, 'table-name': table },
    'rule-action': action,
  };
}

describe('parsePlan: wrong plans name the field and what was expected', () => {
  test('load.parallel 0', () => {
    const issues = expectIssue(plan({ load: { parallel: 0 } }), 'load.parallel', 'expected an integer from 1 to 64, got 0');
    expect(issues).toHaveLength(1);
    expect(issues[0]!.value).toBe(0);
  });

  test('objects.grants must be true or false; an unknown objects field is named', () => {
    expectIssue(plan({ objects: { grants: 'yes' } }), 'objects.grants', 'expected true or false, got "yes"');
    expectIssue(plan({ objects: { grant: true } }), 'objects.grant', 'unknown field');
    expect(ok(plan({ objects: { grants: true } })).objects).toEqual({ grants: true });
    expect(grantsAsked(ok(plan({ objects: { grants: true } })))).toBe(true);
    // A running migration's plan, recorded before `objects` existed, asks for no grants.
    const { objects: _objects, ...older } = ok(plan({}));
    expect(grantsAsked(older as ReturnType<typeof ok>)).toBe(false);
  });

  test('load.parallel 65 and 2.5', () => {
    expectIssue(plan({ load: { parallel: 65 } }), 'load.parallel', '1 to 64, got 65');
    expectIssue(plan({ load: { parallel: 2.5 } }), 'load.parallel', 'expected an integer from 1 to 64, got 2.5');
    expectIssue(plan({ load: { parallel: '4' } }), 'load.parallel', 'got "4"');
  });

  test('load.chunkRows 0', () => {
    expectIssue(plan({ load: { chunkRows: 0 } }), 'load.chunkRows', 'expected a positive integer, got 0');
  });

  test('a typo in a top-level field is an unknown field', () => {
    const issues = expectIssue(
      { ...minimal, tabels: { include: ['shop.%'] } },
      'tabels',
      'unknown field (expected one of: name, mode, runner, source, target, tables, keys, objects, load, cdc, validate, alerts, aws)',
    );
    expect(formatPlanIssues(issues, 'plan.yaml')).toBe(
      'plan.yaml: tabels: unknown field (expected one of: name, mode, runner, source, target, tables, keys, objects, load, cdc, validate, alerts, aws)',
    );
  });

  test('an unknown nested field does not echo its value', () => {
    const issues = expectIssue(plan({ source: { password: 'hunter2' } }), 'source.password', 'unknown field (expected one of: engine, url, auth, tls)');
    expect(JSON.stringify(issues)).not.toContain('hunter2');
  });

  test('missing source.url', () => {
    expectIssue(
      { ...minimal, source: { engine: 'postgres' } },
      'source.url',
      'required (a connection URL given by reference: env:VAR, file:PATH or aws-secret:ARN)',
    );
  });

  test('missing name and missing target', () => {
    const issues = issuesOf({ source: minimal.source });
    expect(issues).toContainEqual(expect.objectContaining({ path: 'name', message: expect.stringMatching(/^required/) }));
    expect(issues).toContainEqual(expect.objectContaining({ path: 'target', message: expect.stringMatching(/^required/) }));
  });

  test('a missing enum field is required, not "expected one of"', () => {
    expectIssue({ ...minimal, source: { url: 'env:S' } }, 'source.engine', 'required (postgres or mysql)');
    expectIssue(plan({ tables: { mappings: { rules: [{ 'rule-id': '1' }] } } }), 'tables.mappings.rules[0].rule-type', 'required');
  });

  test('mode with a typo', () => {
    expectIssue(plan({ mode: 'fullload' }), 'mode', 'expected one of full-load, full-load-and-cdc, cdc, dump-restore, got "fullload"');
  });

  test('runner unknown', () => {
    expectIssue(plan({ runner: 'dms' }), 'runner', 'expected one of native, aws, got "dms"');
  });

  test('name with capitals, and too long', () => {
    expectIssue(plan({ name: 'Shop' }), 'name', 'lowercase letters, digits and -');
    expectIssue(plan({ name: '-shop' }), 'name', 'got "-shop"');
    expectIssue(plan({ name: 'a'.repeat(51) }), 'name', 'at most 50 characters');
    expect(ok(plan({ name: 'a'.repeat(50) })).name).toHaveLength(50);
  });

  test('source.engine and target.engine', () => {
    expectIssue(plan({ source: { engine: 'oracle' } }), 'source.engine', 'expected one of postgres, mysql, got "oracle"');
    expectIssue(plan({ target: { engine: 'mysql' } }), 'target.engine', 'expected one of postgres, got "mysql"');
  });

  test('an inline URL with a password is refused without echoing the password', () => {
    const issues = expectIssue(
      plan({ source: { url: 'postgres://app:s3cr3t-P4ss@db.internal:5432/shop' } }),
      'source.url',
      'env:VAR, file:PATH or aws-secret:ARN',
    );
    const issue = issues.find((i) => i.path === 'source.url')!;
    expect(issue.message).toMatch(/password/);
    expect(issue.value).toBe('postgres://app:***@db.internal:5432/shop');
    expect(JSON.stringify(issues)).not.toContain('s3cr3t');
    expect(formatPlanIssues(issues, 'plan.yaml')).not.toContain('s3cr3t');
  });

  test('a password in the query string is refused too, and masked', () => {
    const issues = expectIssue(
      plan({ target: { url: 'postgresql://app@db/shop?sslmode=require&password=qu3ry-s3cret' } }),
      'target.url',
      'env:VAR, file:PATH or aws-secret:ARN',
    );
    expect(JSON.stringify(issues)).not.toContain('qu3ry-s3cret');
    expect(issues[0]!.value).toBe('postgresql://app@db/shop?sslmode=require&password=***');
  });

  test('a bare string in a url field is hidden: it may be a password', () => {
    const issues = expectIssue(plan({ source: { url: 'correct-horse-battery' } }), 'source.url', 'expected a connection URL given by reference');
    expect(JSON.stringify(issues)).not.toContain('correct-horse');
  });

  test('env: and file: references must be well formed', () => {
    expectIssue(plan({ source: { url: 'env:1BAD' } }), 'source.url', 'expected env:VAR');
    expectIssue(plan({ target: { url: 'file:' } }), 'target.url', 'expected file:PATH with a non-empty path');
  });

  test('an inline URL must match the engine', () => {
    expectIssue(plan({ source: { engine: 'mysql', url: 'postgres://app@db/shop' } }), 'source.url', 'expected a mysql URL (mysql:// or mariadb://)');
    expectIssue(plan({ target: { url: 'mysql://app@db/shop' } }), 'target.url', 'expected a postgres URL (postgres:// or postgresql://)');
    expect(ok(plan({ source: { engine: 'mysql', url: 'mariadb://app@db:3306/shop' } })).source.engine).toBe('mysql');
  });

  test('tls.mode and tls.ca', () => {
    expectIssue(plan({ source: { tls: { mode: 'strict' } } }), 'source.tls.mode', 'expected one of disable, require, verify-ca, verify-full, got "strict"');
    expectIssue(plan({ target: { tls: { mode: 'verify-ca', ca: '-----BEGIN CERTIFICATE-----' } } }), 'target.tls.ca', 'expected a reference: env:VAR, file:PATH or aws-secret:ARN');
  });

  test('target.createDatabase must be a boolean', () => {
    expectIssue(plan({ target: { createDatabase: 'yes' } }), 'target.createDatabase', 'expected true or false, got "yes"');
  });

  test('a table pattern without a schema', () => {
    expectIssue(plan({ tables: { include: ['shop.%', 'orders'] } }), 'tables.include[1]', 'expected schema.table');
    expectIssue(plan({ tables: { exclude: ['a.b.c'] } }), 'tables.exclude[0]', 'too many dots');
    expectIssue(plan({ tables: { include: ['"unterminated.x'] } }), 'tables.include[0]', 'unterminated quote');
  });

  test('an empty include list selects nothing and is refused', () => {
    expectIssue(plan({ tables: { include: [] } }), 'tables.include', 'expected at least one schema.table pattern');
  });

  test('include/exclude and mappings together', () => {
    const issues = expectIssue(
      plan({ tables: { include: ['shop.%'], mappings: { rules: [selection('1', 'include', 'shop', '%')] } } }),
      'tables.mappings',
      'cannot be combined with tables.include',
    );
    expect(issues.find((i) => i.path === 'tables.mappings')!.message).toContain('not both');
  });

  test('transformation rules are accepted (test/unit/dms-mapping-schema.test.ts); table-settings rules are not supported yet', () => {
    const rename = { 'rule-type': 'transformation', 'rule-id': '2', 'rule-action': 'rename', 'rule-target': 'schema', 'object-locator': { 'schema-name': 'shop' }, value: 'app' };
    const mappings = {
      rules: [
        selection('1', 'include', 'shop', '%'),
        rename,
        { 'rule-type': 'table-settings', 'rule-id': '3', 'object-locator': { 'schema-name': 'shop', 'table-name': 'big' }, 'parallel-load': { type: 'ranges' } },
      ],
    };
    const issues = expectIssue(plan({ tables: { mappings } }), 'tables.mappings.rules[2]', 'not supported yet: table-settings');
    expect(issues).toHaveLength(1);
    const p = ok(plan({ tables: { mappings: { rules: mappings.rules.slice(0, 2) } } }));
    expect(p.tables.mappings!.rules[1]).toEqual(rename);
    expect(compileSelection(p.tables).matches('shop', 'orders')).toBe(true);
  });

  test('a bad selection rule names the field inside the rule', () => {
    const bad = { ...selection('1', 'include', 'shop', '%'), 'rule-action': 'keep' };
    expectIssue(plan({ tables: { mappings: { rules: [bad] } } }), 'tables.mappings.rules[0].rule-action', 'expected one of include, exclude, explicit, got "keep"');
    const typo = { ...selection('1', 'include', 'shop', '%'), 'objekt-locator': {} };
    expectIssue(plan({ tables: { mappings: { rules: [typo] } } }), 'tables.mappings.rules[0].objekt-locator', 'unknown field');
    expectIssue(
      plan({ tables: { mappings: { rules: [selection('1', 'explicit', 'shop', 'order%')] } } }),
      'tables.mappings.rules[0].object-locator.table-name',
      'without % wildcards',
    );
    expectIssue(plan({ tables: { mappings: { rules: [selection('1', 'exclude', 'shop', '%')] } } }), 'tables.mappings.rules', 'at least one selection rule with rule-action include');
  });

  test('mappings: file: is read through the caller', () => {
    const doc = { rules: [selection('1', 'include', 'shop', '%')] };
    const read: string[] = [];
    const p = ok(plan({ tables: { mappings: 'file:maps/mappings.json' } }), {
      readMappings: (path) => {
        read.push(path);
        return doc;
      },
    });
    expect(read).toEqual(['maps/mappings.json']);
    expect(p.tables).toEqual({ include: [], exclude: [], mappings: doc });

    expectIssue(plan({ tables: { mappings: 'file:mappings.json' } }), 'tables.mappings', 'cannot read mappings.json here');
    expectIssue(
      plan({ tables: { mappings: 'file:missing.json' } }),
      'tables.mappings',
      'cannot read missing.json: the file cannot be read (ENOENT)',
      {
        readMappings: () => {
          throw new MappingsUnreadable('the file cannot be read (ENOENT)');
        },
      },
    );
    // Any other error's words may quote the file (a JSON parser does): not shown.
    expectIssue(plan({ tables: { mappings: 'file:token.json' } }), 'tables.mappings', 'cannot read token.json: unreadable', {
      readMappings: () => {
        throw new Error('Unexpected token \'s\', "sk_live_Th"... is not valid JSON');
      },
    });
    expectIssue(plan({ tables: { mappings: 'mappings.json' } }), 'tables.mappings', 'expected file:PATH');
  });

  test('cdc.slot must be a PostgreSQL identifier', () => {
    expectIssue(plan({ cdc: { slot: 'Bad-Slot' } }), 'cdc.slot', 'expected a PostgreSQL identifier');
    expectIssue(plan({ cdc: { publication: 'x'.repeat(64) } }), 'cdc.publication', 'at most 63');
  });

  test('cdc.keylessTables is refuse or whole-row, and kept only when given', () => {
    expectIssue(plan({ mode: 'full-load-and-cdc', cdc: { keylessTables: 'maybe' } }), 'cdc.keylessTables', 'refuse or whole-row');
    expect(ok(plan({ mode: 'full-load-and-cdc', cdc: { keylessTables: 'whole-row' } })).cdc.keylessTables).toBe('whole-row');
    expect('keylessTables' in ok(plan({ mode: 'full-load-and-cdc' })).cdc).toBe(false);
  });

  test('cdc.startPosition only with mode cdc', () => {
    expectIssue(plan({ cdc: { startPosition: '0/16B3748' } }), 'cdc.startPosition', 'only used with mode cdc');
  });

  test('validate.checksums must be a boolean', () => {
    expectIssue(plan({ validate: { checksums: 'yes' } }), 'validate.checksums', 'expected true or false, got "yes"');
  });

  test('alerts: lagSeconds positive, webhook by reference (an inline webhook URL is hidden)', () => {
    expectIssue(plan({ alerts: { lagSeconds: -1 } }), 'alerts.lagSeconds', 'expected a positive number of seconds, got -1');
    const issues = expectIssue(
      plan({ alerts: { webhook: 'https://hooks.slack.com/services/T0/B0/t0kenSecret' } }),
      'alerts.webhook',
      'expected a reference: env:VAR, file:PATH or aws-secret:ARN',
    );
    expect(JSON.stringify(issues)).not.toContain('t0kenSecret');
  });

  test('runner aws needs an aws section with a replication instance; the DMS fields need runner aws; a region is required', () => {
    expectIssue(plan({ runner: 'aws' }), 'aws', 'required when runner is aws');
    expectIssue(plan({ runner: 'aws', aws: { region: 'eu-west-1' } }), 'aws.replicationInstance', 'required when runner is aws');
    expectIssue(plan({ aws: { region: 'eu-west-1', replicationInstance: { id: 'r', class: 'dms.t3.medium' } } }), 'aws.replicationInstance', 'only used with runner: aws');
    expectIssue(plan({ aws: { region: 'eu-west-1', cleanup: true } }), 'aws.cleanup', 'only used with runner: aws');
    // The SNS topic (alerts) and the RDS instance serve any runner.
    expect(ok(plan({ aws: { region: 'eu-west-1', snsTopicArn: 'arn:aws:sns:eu-west-1:123456789012:dbferry' } })).aws?.snsTopicArn).toContain('dbferry');
    expectIssue(plan({ runner: 'aws', aws: { rds: { instanceId: 'x' } } }), 'aws.region', 'required');
    expectIssue(plan({ runner: 'aws', aws: { region: 'eu-west-1', rds: { instanceId: 'x', create: { class: 'db.t3.micro', engineVersion: 16.4, storageGb: 20 } } } }), 'aws.rds.create.engineVersion', 'got 16.4');
  });

  test('keys: shape of entries', () => {
    expectIssue(plan({ keys: [{ table: 'orders', surrogateKey: { column: 'id', type: 'bigint' } }] }), 'keys[0].table', 'expected schema.table');
    expectIssue(plan({ keys: [{ table: 'shop.orders', surrogateKey: { column: 'id' } }] }), 'keys[0].surrogateKey.type', 'required');
    expectIssue(plan({ keys: [{ table: 'shop.orders' }] }), 'keys[0]', 'needs surrogateKey or references');
    expectIssue(
      plan({ keys: [{ table: 'shop.items', references: [{ column: 'order_id', parent: 'shop.orders', on: {} }] }] }),
      'keys[0].references[0].on',
      'at least one child column',
    );
  });

  test('a plan that is not a mapping', () => {
    expectIssue(['name'], '(plan)', 'expected a mapping of plan fields');
  });

  test('several issues are reported at once', () => {
    const issues = issuesOf(plan({ mode: 'x', load: { parallel: 0 }, cdc: { slot: 'A' }, tables: { include: ['t'] } }));
    expect(issues.map((i) => i.path).sort()).toEqual(['cdc.slot', 'load.parallel', 'mode', 'tables.include[0]']);
  });
});

describe('parsePlanYaml', () => {
  test('a valid YAML plan', () => {
    const r = parsePlanYaml('name: shop\nsource: { engine: postgres, url: env:SRC }\ntarget:\n  engine: postgres\n  url: "file:/run/secrets/target"\n');
    expect(r.ok && r.plan.target.url).toBe('file:/run/secrets/target');
  });

  test('a syntax error gives the line and column', () => {
    const r = parsePlanYaml('name: shop\nsource:\n  engine: postgres\n  url: [env:X\ntarget: {}\n');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues[0]!.path).toBe('(file)');
    expect(r.issues[0]!.message).toMatch(/^YAML syntax error at line \d+, column \d+: /);
    const dup = parsePlanYaml('name: shop\nmode: cdc\nname: other\n');
    expect(dup.ok ? [] : dup.issues).toEqual([{ path: '(file)', message: expect.stringContaining('at line 3, column 1') }]);
    expect(formatPlanIssues(dup.ok ? [] : dup.issues, 'plan.yaml')).toMatch(/^plan\.yaml: YAML syntax error at line 3, column 1: /);
  });

  test('a syntax error on a line holding a password does not quote the line', () => {
    const r = parsePlanYaml('name: shop\nsource:\n  url: "postgres://u:pl4inSecret@h/db\n');
    expect(r.ok).toBe(false);
    expect(JSON.stringify(r)).not.toContain('pl4inSecret');
  });

  test('field issues come through with their paths', () => {
    const r = parsePlanYaml('name: shop\nsource: { engine: postgres, url: env:S }\ntarget: { engine: postgres, url: env:T }\nload:\n  parallel:\n');
    expect(r.ok ? [] : r.issues).toEqual([{ path: 'load.parallel', value: null, message: 'expected an integer from 1 to 64, got null (an empty value)' }]);
  });

  test('an empty file', () => {
    const r = parsePlanYaml('');
    expect(r.ok ? [] : r.issues).toEqual([{ path: '(file)', message: expect.stringContaining('the file is empty') }]);
  });
});

describe('formatPlanIssues', () => {
  test('one line per issue, with or without a file name', () => {
    const issues: PlanIssue[] = [
      { path: 'load.parallel', value: 0, message: 'expected an integer from 1 to 64, got 0' },
      { path: 'mode', message: 'first\nsecond' },
    ];
    expect(formatPlanIssues(issues, 'plan.yaml')).toBe('plan.yaml: load.parallel: expected an integer from 1 to 64, got 0\nplan.yaml: mode: first second');
    expect(formatPlanIssues(issues)).toBe('load.parallel: expected an integer from 1 to 64, got 0\nmode: first second');
  });
});

describe('table selection', () => {
  const sel = (include: string[], exclude: string[] = []) => compileSelection({ include, exclude });

  test('% matches any run of characters; _ is literal; matching is case-sensitive', () => {
    const s = sel(['shop.%'], ['shop.tmp_%']);
    expect(s.matches('shop', 'orders')).toBe(true);
    expect(s.matches('shop', 'tmp_x')).toBe(false);
    expect(s.matches('shop', 'tmpAx')).toBe(true);
    expect(s.matches('Shop', 'orders')).toBe(false);
    expect(s.matches('shop2', 'orders')).toBe(false);
    expect(sel(['%.%']).matches('any thing', 'a\nb')).toBe(true);
    expect(sel(['s.a%b%c']).matches('s', 'aXXbYYc')).toBe(true);
    expect(sel(['s.a%b%c']).matches('s', 'aXXbYY')).toBe(false);
  });

  test('quoted parts match exactly: dots, quotes, % and spaces', () => {
    expect(sel(['"my.schema".orders']).matches('my.schema', 'orders')).toBe(true);
    expect(sel(['"my.schema".orders']).matches('myXschema', 'orders')).toBe(false);
    const weird = sel(['"Weird ""Schema""".%']);
    expect(weird.matches('Weird "Schema"', 'Order Items')).toBe(true);
    expect(weird.matches('Weird Schema', 'x')).toBe(false);
    expect(sel(['"100%".t']).matches('100%', 't')).toBe(true);
    expect(sel(['"100%".t']).matches('1000', 't')).toBe(false);
  });

  test('unquoted hostile names: spaces, capitals, Unicode, regex characters', () => {
    expect(sel(['My Schema.Order Items']).matches('My Schema', 'Order Items')).toBe(true);
    expect(sel(['données.café%']).matches('données', 'café_crème')).toBe(true);
    expect(sel(['données.café%']).matches('donnees', 'café')).toBe(false);
    expect(sel(['日本.表%']).matches('日本', '表一')).toBe(true);
    expect(sel(['a+b.(x)[y]%']).matches('a+b', '(x)[y]z')).toBe(true);
    expect(sel(['a+b.(x)[y]%']).matches('aab', '(x)[y]z')).toBe(false);
    expect(sel(['%.%'], ['"Weird ""Schema""".%', 'public.%']).matches('Weird "Schema"', 't')).toBe(false);
  });

  test('parseTablePattern', () => {
    expect(parseTablePattern('"a""b".%')).toEqual({ ok: true, pattern: { schema: { exact: 'a"b' }, table: { glob: '%' } } });
    expect(parseTablePattern('orders')).toEqual({ ok: false, message: expect.stringContaining('expected schema.table') });
  });

  test('DMS selection rules: include, exclude, explicit', () => {
    const p = ok(
      plan({
        tables: {
          mappings: {
            rules: [
              selection('1', 'include', 'shop', '%'),
              selection('2', 'exclude', 'shop', 'tmp%'),
              { ...selection('3', 'explicit', 'Other Schema', 'Line_Items'), 'load-order': 1 },
            ],
          },
        },
      }),
    );
    const s = compileSelection(p.tables);
    expect(s.matches('shop', 'orders')).toBe(true);
    expect(s.matches('shop', 'tmp_orders')).toBe(false);
    expect(s.matches('Other Schema', 'Line_Items')).toBe(true);
    expect(s.matches('Other Schema', 'LineXItems')).toBe(false);
    expect(s.matches('public', 'orders')).toBe(false);
  });

  test('the selector is rebuilt from plain plan data (as after a JSON round trip)', () => {
    const p = ok(plan({ tables: { include: ['"Weird ""Schema""".%'] } }));
    const s = compileSelection(JSON.parse(JSON.stringify(p)).tables);
    expect(s.matches('Weird "Schema"', 'x')).toBe(true);
  });
});

describe('secret references', () => {
  test('parseSecretRef', () => {
    expect(parseSecretRef('env:SOURCE_URL')).toEqual({ kind: 'env', name: 'SOURCE_URL' });
    expect(parseSecretRef('file:/run/secrets/db')).toEqual({ kind: 'file', path: '/run/secrets/db' });
    expect(parseSecretRef('postgres://app@h/db')).toEqual({ kind: 'inline', value: 'postgres://app@h/db' });
  });

  test('redactUrl masks the password wherever it is, even with @ and / in it', () => {
    expect(redactUrl('postgres://app:pw@host/db')).toBe('postgres://app:***@host/db');
    expect(redactUrl('postgres://app:p@ss/w0rd@host:5433/db?sslmode=require')).toBe('postgres://app:***@host:5433/db?sslmode=require');
    expect(redactUrl('mysql://root:x@[::1]:3306/shop')).toBe('mysql://root:***@[::1]:3306/shop');
    expect(redactUrl('postgres://h/db?password=abc&user=u')).toBe('postgres://h/db?password=***&user=u');
    expect(redactUrl('postgres://app@host/db')).toBe('postgres://app@host/db');
    expect(redactUrl('env:X')).toBe('env:X');
    expect(redactUrl('not a url')).toBe('not a url');
  });

  test('describeEndpoint shows engine/host:port/database and no credentials', () => {
    expect(describeEndpoint('postgres', 'postgres://app:pw@db.internal:6432/shop?sslmode=require')).toBe('postgres/db.internal:6432/shop');
    expect(describeEndpoint('postgres', 'postgresql://db.internal/shop')).toBe('postgres/db.internal:5432/shop');
    expect(describeEndpoint('mysql', 'mysql://root:x@[::1]/shop')).toBe('mysql/[::1]:3306/shop');
    expect(describeEndpoint('postgres', 'postgres:///shop?host=/var/run/postgresql')).toBe('postgres//var/run/postgresql:5432/shop');
    expect(describeEndpoint('postgres', 'postgres://u:p%40ss@h/My%20DB')).toBe('postgres/h:5432/My DB');
    expect(describeEndpoint('postgres', 'env:SOURCE_URL')).toBe('postgres/env:SOURCE_URL');
    expect(describeEndpoint('postgres', 'postgres://app:s3cret@h/db')).not.toContain('s3cret');
  });
});

describe('unsupportedFeatures', () => {
  test('a full-load native postgres plan has none (alerts are fine)', () => {
    expect(unsupportedFeatures(ok(plan({ alerts: { webhook: 'env:HOOK' } })))).toEqual([]);
  });

  test('runner aws: DMS modes only; keys run where dbferry creates and loads the tables', () => {
    const keys = [{ table: 'shop.orders', surrogateKey: { column: 'id', type: 'bigint' } }];
    const aws = { region: 'eu-west-1', replicationInstance: { id: 'r', class: 'dms.t3.medium' } };
    expect(unsupportedFeatures(ok(plan({ mode: 'full-load-and-cdc', runner: 'aws', aws, source: { engine: 'mysql', url: 'env:S' }, keys })))).toEqual([]);
    expect(unsupportedFeatures(ok(plan({ mode: 'dump-restore', runner: 'aws', aws })))).toEqual([expect.objectContaining({ path: 'mode', message: expect.stringContaining('use runner native') })]);
    expect(unsupportedFeatures(ok(plan({ mode: 'cdc', runner: 'aws', aws, cdc: { startPosition: '0/16B3748' } })))).toEqual([]);
    const mysql = { engine: 'mysql', url: 'env:S' };
    expect(unsupportedFeatures(ok(plan({ mode: 'cdc', runner: 'aws', aws, source: mysql, cdc: { startPosition: 'mysql-bin-changelog.000024:373' } })))).toEqual([]);
    expect(unsupportedFeatures(ok(plan({ mode: 'cdc', runner: 'aws', aws, source: mysql, cdc: { startPosition: '0-1-1234' } })))).toEqual([
      expect.objectContaining({ path: 'cdc.startPosition', message: expect.stringContaining('not a GTID set') }),
    ]);
    expect(unsupportedFeatures(ok(plan({ mode: 'dump-restore', keys })))).toEqual([expect.objectContaining({ path: 'keys', message: expect.stringContaining('mode dump-restore restores them as pg_dump wrote them') })]);
    expect(unsupportedFeatures(ok(plan({ mode: 'cdc', keys })))).toEqual([expect.objectContaining({ path: 'keys', message: expect.stringContaining('mode cdc replicates into tables made some other way') })]);
  });

  test('auth: iam is for the workers’ own connections, over TLS, with runner native', () => {
    const aws = { region: 'eu-west-1', replicationInstance: { id: 'r', class: 'dms.t3.medium' } };
    const tls = { mode: 'verify-full', ca: 'file:/etc/rds-ca.pem' };
    expect(unsupportedFeatures(ok(plan({ target: { auth: 'iam', tls } })))).toEqual([]);
    expect(unsupportedFeatures(ok(plan({ target: { auth: 'iam' } })))).toEqual([expect.objectContaining({ path: 'target.tls', message: expect.stringContaining('auth: iam needs TLS') })]);
    expect(unsupportedFeatures(ok(plan({ source: { engine: 'mysql', url: 'env:S', auth: 'iam', tls } })))).toEqual([]);
    expect(unsupportedFeatures(ok(plan({ runner: 'aws', aws, source: { auth: 'iam', tls } })))).toEqual([expect.objectContaining({ path: 'source.auth', message: expect.stringContaining('DMS endpoints need a password') })]);
    expectIssue(plan({ source: { auth: 'token' } }), 'source.auth', 'expected one of password, iam, got "token"');
  });

  test('a surrogate key is bigint or uuid', () => {
    expectIssue(plan({ keys: [{ table: 'shop.orders', surrogateKey: { column: 'id', type: 'int' } }] }), 'keys[0].surrogateKey.type', 'one of bigint, uuid');
  });

  test('a table in keys and in a define-primary-key rule is a plan error naming both', () => {
    const mappings = {
      rules: [
        { 'rule-type': 'selection', 'rule-id': '1', 'rule-name': '1', 'rule-action': 'include', 'object-locator': { 'schema-name': 'shop', 'table-name': '%' } },
        {
          'rule-type': 'transformation',
          'rule-id': '7',
          'rule-name': '7',
          'rule-target': 'table',
          'rule-action': 'define-primary-key',
          'object-locator': { 'schema-name': 'shop', 'table-name': 'ord%' },
          'primary-key-def': { name: 'orders_pk', columns: ['customer_id', 'order_no'] },
        },
      ],
    };
    expectIssue(plan({ tables: { mappings }, keys: [{ table: 'shop.items', surrogateKey: { column: 'id', type: 'bigint' } }, { table: 'shop.orders', surrogateKey: { column: 'id', type: 'bigint' } }] }), 'keys[1].table', 'rule 7 (define-primary-key)');
  });

  test('a mysql source loads with mode full-load and replicates with the CDC modes; its startPosition is a binlog file:offset', () => {
    expect(unsupportedFeatures(ok(plan({ mode: 'full-load', source: { engine: 'mysql', url: 'env:S' } })))).toEqual([]);
    expect(unsupportedFeatures(ok(plan({ mode: 'full-load-and-cdc', source: { engine: 'mysql', url: 'env:S' } })))).toEqual([]);
    expect(unsupportedFeatures(ok(plan({ mode: 'cdc', source: { engine: 'mysql', url: 'env:S' }, cdc: { startPosition: 'binlog.000012:4567' } })))).toEqual([]);
    expect(unsupportedFeatures(ok(plan({ mode: 'cdc', source: { engine: 'mysql', url: 'env:S' }, cdc: { startPosition: '0-1-1234,1-3-45' } })))).toEqual([]);
    expect(unsupportedFeatures(ok(plan({ mode: 'cdc', source: { engine: 'mysql', url: 'env:S' }, cdc: { startPosition: '3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5' } })))).toEqual([]);
    expect(unsupportedFeatures(ok(plan({ mode: 'cdc', source: { engine: 'mysql', url: 'env:S' }, cdc: { startPosition: '0/16B3748' } })))).toContainEqual(
      expect.objectContaining({ path: 'cdc.startPosition', message: expect.stringContaining('binlog file:offset') }),
    );
  });

  test('CDC modes run from PostgreSQL; startPosition is an LSN', () => {
    expect(unsupportedFeatures(ok(plan({ mode: 'full-load-and-cdc' })))).toEqual([]);
    expect(unsupportedFeatures(ok(plan({ mode: 'cdc', cdc: { startPosition: '0/16B3748' } })))).toEqual([]);
    expect(unsupportedFeatures(ok(plan({ mode: 'cdc', cdc: { startPosition: 'binlog.000003:4' } })))).toEqual([
      { path: 'cdc.startPosition', value: 'binlog.000003:4', message: 'expected an LSN such as 0/16B3748 for a postgres source' },
    ]);
  });

  test('mode dump-restore runs from PostgreSQL to PostgreSQL', () => {
    const p = ok(plan({ mode: 'dump-restore', load: { parallel: 2 } }));
    expect(p.mode).toBe('dump-restore');
    expect(unsupportedFeatures(p)).toEqual([]);
  });

  test('mode dump-restore from mysql is refused on mode: PostgreSQL → PostgreSQL only', () => {
    const issues = unsupportedFeatures(ok(plan({ mode: 'dump-restore', source: { engine: 'mysql', url: 'env:S' } })));
    expect(issues).toContainEqual({
      path: 'mode',
      value: 'dump-restore',
      message: expect.stringContaining('dump-restore is PostgreSQL → PostgreSQL only'),
    });
    expect(issues.find((i) => i.path === 'mode')!.message).toContain('mysql');
    expect(issues.filter((i) => i.path === 'mode')).toHaveLength(1);
  });
});
