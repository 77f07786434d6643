import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePlanYaml } from '../../plan';
import { cliEnv, dbferry } from '../support/cli';

/** `dbferry init`, `dbferry schema`, and --json on the commands scripts call, failures included. */
describe('dbferry init, schema and --json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dbferry-init-'));
  const env = (extra: Record<string, string> = {}) => ({ ...process.env, ...extra });

  it('schema prints the JSON Schema kept in the repository', async () => {
    const res = await dbferry(['schema'], env());
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(readFileSync(join(__dirname, '..', '..', 'schema', 'plan.schema.json'), 'utf8'));
  });

  it('init writes a valid, commented plan; the engine from the URL scheme; only the references enter it', async () => {
    const file = join(dir, 'shop.yaml');
    const res = await dbferry(['init', file, '--source', 'env:OLD_DB', '--target', 'env:NEW_DB'], env({ OLD_DB: 'mysql://app:s3cret-pw@old-db:3306/Shop_DB', NEW_DB: 'postgres://app:other-pw@new-db/shop' }));
    expect({ code: res.code, out: res.stdout }).toEqual({ code: 0, out: expect.stringContaining(`wrote ${file} (migration shop-db, source mysql)`) });
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/^# yaml-language-server: \$schema=\S*schema\/plan\.schema\.json$/m);
    expect(text).not.toMatch(/s3cret-pw|other-pw|old-db|new-db/);
    const parsed = parsePlanYaml(text);
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    expect(parsed.plan).toEqual(expect.objectContaining({ name: 'shop-db', mode: 'full-load', source: expect.objectContaining({ engine: 'mysql', url: 'env:OLD_DB' }), target: expect.objectContaining({ url: 'env:NEW_DB' }) }));
    expect(parsed.plan.tables).toEqual(expect.objectContaining({ include: ['%.%'] }));

    const again = await dbferry(['init', file, '--source', 'env:OLD_DB', '--target', 'env:NEW_DB', '--json'], env({ OLD_DB: 'postgres://x@h/a' }));
    expect(again.code).toBe(5);
    expect(JSON.parse(again.stdout)).toEqual({ error: { exitCode: 5, message: expect.stringContaining('exists') } });

    const pg = await dbferry(['init', '-', '--source', 'postgresql://app@old-db/inventory', '--target', 'env:NEW_DB', '--name', 'inv'], env());
    expect(pg.code).toBe(0);
    const pgPlan = parsePlanYaml(pg.stdout);
    expect(pgPlan.ok && pgPlan.plan.source.engine).toBe('postgres');
  });

  it('init refuses what it cannot know or must not write: exit 2 naming the flag', async () => {
    const secret = await dbferry(['init', '-', '--source', 'aws-secret:arn:aws:secretsmanager:eu-west-1:123456789012:secret:db', '--target', 'env:T'], env());
    expect(secret.code).toBe(2);
    expect(secret.stderr).toContain('--source-engine');
    const unset = await dbferry(['init', '-', '--source', 'env:NOT_SET_ANYWHERE', '--target', 'env:T'], env());
    expect(unset.code).toBe(2);
    expect(unset.stderr).toMatch(/NOT_SET_ANYWHERE is not set.*--source-engine/);
    const inline = await dbferry(['init', '-', '--source', 'postgres://app:hunter2@db/x', '--target', 'env:T'], env());
    expect(inline.code).toBe(2);
    expect(inline.stderr).toMatch(/^dbferry: --source: an inline URL must not contain a password/m);
    expect(inline.stderr + inline.stdout).not.toContain('hunter2');
    const badName = await dbferry(['init', '-', '--source', 'postgres://app@db/x', '--target', 'env:T', '--name', 'Shop DB'], env());
    expect(badName.code).toBe(2);
    expect(badName.stderr).toMatch(/^dbferry: --name: expected lower-case letters/m);
    const odd = await dbferry(['init', '-', '--source', 'mysql://app@db/a%22b.c%25', '--target', 'env:T'], env());
    expect(odd.code).toBe(0);
    expect(parsePlanYaml(odd.stdout).ok).toBe(true);
    const wrongTarget = await dbferry(['init', '-', '--source', 'postgres://app@db/x', '--target', 'mysql://app@db/y'], env());
    expect(wrongTarget.code).toBe(2);
    expect(wrongTarget.stderr).toContain('--target: expected a PostgreSQL URL');
  });

  it('--json on operator commands: the answer as JSON, failures as JSON with the same exit code', async () => {
    const e = cliEnv('q-json-cli');
    for (const cmd of [['retry', 'no-such-migration'], ['pause', 'no-such-migration'], ['cleanup', 'no-such-migration']]) {
      const res = await dbferry([...cmd, '--json'], e);
      expect({ cmd, code: res.code }).toEqual({ cmd, code: 4 });
      expect(JSON.parse(res.stdout)).toEqual({ error: { exitCode: 4, message: expect.stringContaining('no-such-migration') } });
    }
    const setup = await dbferry(['setup-namespace', '--json'], e);
    expect(setup.code).toBe(0);
    expect(JSON.parse(setup.stdout)).toEqual(expect.objectContaining({ namespace: 'default', registered: [], alreadyRegistered: expect.arrayContaining(['DbferryPhase']) }));
  });
});
