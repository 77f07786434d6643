import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The workflow knows no source engine: replication slots, publications and LSNs are
 * PostgreSQL's words and belong in activities/postgres/. Whatever the workflow shows a person
 * about them comes from activity results. Comments may still name an engine's example.
 */
describe('workflows/ is engine-neutral', () => {
  const dir = join(__dirname, '..', '..', 'workflows');
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));

  test.each(files)('%s has no slot, publication or LSN outside comments', (file) => {
    const code = readFileSync(join(dir, file), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/(^|[^:])\/\/.*$/gm, '$1');
    expect(code.match(/slot|publication|lsn/gi) ?? []).toEqual([]);
  });

  test('the check itself sees such a word', () => {
    const code = "const s = `drop slot ${plan.cdc.slot}`;".replace(/(^|[^:])\/\/.*$/gm, '$1');
    expect(code.match(/slot|publication|lsn/gi)).toHaveLength(2);
  });
});
