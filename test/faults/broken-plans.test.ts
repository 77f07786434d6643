import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { createDatabase, dropDatabase, uniqueName, withClient } from '../support/databases';

/**
 * What held in issue 18 and must keep holding: every broken plan gives one clear line naming
 * the field, exit 2, before anything reaches Temporal; no secret in it; and a table pattern
 * cannot inject SQL (it is a name, quoted everywhere).
 */
const VALID = {
  name: 'broken',
  source: "{ engine: postgres, url: env:SRC }",
  target: "{ engine: postgres, url: env:TGT }",
};
const plan = (fields: Record<string, string | undefined>) =>
  Object.entries({ ...VALID, ...fields })
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n') + '\n';

/** [what, the field the error must name, the plan file]. */
const BROKEN: Array<[string, string, string]> = [
  ['a name with spaces', 'name', plan({ name: '"Bad Name"' })],
  ['a name too long', 'name', plan({ name: 'x'.repeat(60) })],
  ['an unknown mode', 'mode', plan({ mode: 'fastest' })],
  ['an unknown runner', 'runner', plan({ runner: 'cloud' })],
  ['no source', 'source', plan({ source: undefined })],
  ['an unknown source engine', 'source.engine', plan({ source: '{ engine: oracle, url: env:SRC }' })],
  ['an inline URL with a password', 'source.url', plan({ source: '{ engine: postgres, url: "postgres://app:Hunter2Secret@db/shop" }' })],
  ['an unknown secret scheme', 'source.url', plan({ source: '{ engine: postgres, url: "vault:kv/db" }' })],
  ['a MySQL target', 'target.engine', plan({ target: '{ engine: mysql, url: env:TGT }' })],
  ['createDatabase not a boolean', 'target.createDatabase', plan({ target: '{ engine: postgres, url: env:TGT, createDatabase: perhaps }' })],
  ['include not a list', 'tables.include', plan({ tables: '{ include: "public.%" }' })],
  ['a pattern without a schema', 'tables.include[0]', plan({ tables: '{ include: [orders] }' })],
  ['include and mappings together', 'tables.mappings', plan({ tables: `{ include: ["public.%"], mappings: { rules: [{ rule-type: selection, rule-id: "1", rule-action: include, object-locator: { schema-name: public, table-name: "%" } }] } }` })],
  ['mappings without file:', 'tables.mappings', plan({ tables: '{ mappings: "mappings.json" }' })],
  ['parallel 0', 'load.parallel', plan({ load: '{ parallel: 0 }' })],
  ['parallel 65', 'load.parallel', plan({ load: '{ parallel: 65 }' })],
  ['negative chunkRows', 'load.chunkRows', plan({ load: '{ chunkRows: -5 }' })],
  ['load a scalar', 'load', plan({ load: '4' })],
  ['a slot name with capitals', 'cdc.slot', plan({ mode: 'full-load-and-cdc', cdc: '{ slot: Bad-Slot }' })],
  ['a publication name too long', 'cdc.publication', plan({ mode: 'full-load-and-cdc', cdc: `{ publication: ${'p'.repeat(64)} }` })],
  ['startPosition outside mode cdc', 'cdc.startPosition', plan({ cdc: '{ startPosition: 0/16B3748 }' })],
  ['startPosition not an LSN', 'cdc.startPosition', plan({ mode: 'cdc', cdc: '{ startPosition: zz }' })],
  ['checksums not a boolean', 'validate.checksums', plan({ validate: '{ checksums: maybe }' })],
  ['a negative lag threshold', 'alerts.lagSeconds', plan({ alerts: '{ lagSeconds: -1 }' })],
  ['a webhook URL inline', 'alerts.webhook', plan({ alerts: '{ webhook: "https://hooks.example/T0KEN" }' })],
  ['a misspelt field', 'tabels', plan({ tabels: '{ include: ["public.%"] }' })],
  ['a key entry that changes nothing', 'keys[0]', plan({ keys: '[{ table: shop.orders }]' })],
  ['a fractional parallel', 'load.parallel', plan({ load: '{ parallel: 2.5 }' })],
  ['an unknown TLS mode', 'source.tls.mode', plan({ source: '{ engine: postgres, url: env:SRC, tls: { mode: sometimes } }' })],
  ['a zero WAL alert threshold', 'alerts.slotWalGb', plan({ alerts: '{ slotWalGb: 0 }' })],
  ['a YAML syntax error', 'YAML syntax error', 'name: broken\nsource: { engine: postgres, url: env:SRC\n'],
  ['an empty file', 'empty', ''],
];

describe('fault: broken plans and hostile patterns', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dbferry-broken-'));
  const queue = uniqueName('broken');

  test.each(BROKEN)('%s: exit 2, one line naming %s', async (_what, field, yaml) => {
    const file = join(dir, `${uniqueName('plan')}.yaml`);
    writeFileSync(file, yaml);
    const r = await dbferry(['check', file], cliEnv(queue));
    expect({ code: r.code, lines: r.stderr.trim().split('\n').length }).toEqual({ code: 2, lines: 1 });
    expect(r.stderr).toContain(field);
    expect(r.stderr).not.toMatch(/Hunter2Secret|T0KEN|\n\s+at /);
  });

  describe('a table pattern is a name, never SQL', () => {
    const db = uniqueName('faults_inject');
    let url: string;
    let worker: WorkerProcess | undefined;

    beforeAll(async () => {
      url = await createDatabase('source', db);
      await withClient(url, (c) => c.query('CREATE TABLE victim (id int); INSERT INTO victim VALUES (1)'));
      worker = await startWorker(cliEnv(queue, { INJ_SRC: url, INJ_TGT: url }));
    });

    afterAll(async () => {
      await worker?.stop();
      await dropDatabase('source', db);
    });

    test('an include pattern carrying SQL selects nothing and runs nothing', async () => {
      const file = writePlan(`
name: inject
source: { engine: postgres, url: env:INJ_SRC }
target: { engine: postgres, url: env:INJ_TGT }
tables: { include: ["public.x'); DROP TABLE victim; --", "public.\\"a\\"\\"; DROP TABLE victim; --\\""] }
`);
      const r = await dbferry(['check', file, '--json'], cliEnv(queue));
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout).findings).toEqual([expect.objectContaining({ code: 'no-tables' })]);
      const left = await withClient(url, (c) => c.query('SELECT count(*)::int AS n FROM victim'));
      expect(left.rows[0].n).toBe(1);
    });
  });
});
