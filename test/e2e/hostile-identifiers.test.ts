import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliEnv, dbferry, startWorker, writePlan, type WorkerProcess } from '../support/cli';
import { expectSameTables, nextSequenceValues, schemaObjects } from '../support/compare';
import { createDatabase, dropDatabase, serverUrl, uniqueName, withClient } from '../support/databases';

/**
 * Identifiers are hostile: quotes, spaces, capitals, reserved words and Unicode in schema, table,
 * column, type and constraint names, and every common type with edge values, migrated by the
 * real workflow (binary and text COPY, keys, indexes, sequences, validation).
 */
describe('a hostile schema migrates through the workflow', () => {
  const sourceDb = uniqueName('hostile');
  const targetDb = uniqueName('hostile_copy');
  const name = uniqueName('hostile').replace(/_/g, '-');
  const queue = `q-${name}`;
  let worker: WorkerProcess;

  beforeAll(async () => {
    const url = await createDatabase('source', sourceDb);
    await withClient(url, (c) => c.query(readFileSync(join(__dirname, '..', 'fixtures', 'hostile-schema.sql'), 'utf8')));
    // Row estimates, so the tables of more than a few rows are split into key ranges (chunkRows 2)
    // whose boundaries are hostile names and values: quoted, Unicode, composite.
    await withClient(url, (c) => c.query('ANALYZE'));
    worker = await startWorker(cliEnv(queue, { SRC_URL: url, TGT_URL: serverUrl('target', targetDb) }));
  });

  afterAll(async () => {
    await worker?.stop();
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', targetDb)]);
  });

  it('ends with every table, constraint, index and sequence equal', async () => {
    const planFile = writePlan(`name: ${name}\nsource: { engine: postgres, url: env:SRC_URL }\ntarget: { engine: postgres, url: env:TGT_URL }\nload: { chunkRows: 2 }\n`);
    const res = await dbferry(['start', planFile, '--wait'], cliEnv(queue));
    if (res.code !== 0) throw new Error(`exit ${res.code}\n${res.stdout}\n${res.stderr}\n${worker.output().slice(-3000)}`);
    expect(res.stdout).toContain('validation: every table equal');
    const chunked = await withClient(serverUrl('target', targetDb), (c) =>
      c.query<{ table_key: string }>("SELECT DISTINCT u->>'table' AS table_key FROM _dbferry.load_tasks, jsonb_array_elements(units) u WHERE u->'range'->>'kind' = 'keys'"),
    );
    expect(chunked.rows.map((r) => r.table_key)).toEqual(expect.arrayContaining(['Weird "Schema".Order Items']));

    const src = serverUrl('source', sourceDb);
    const tgt = serverUrl('target', targetDb);
    const tables = await expectSameTables(src, tgt);
    expect(tables.length).toBeGreaterThanOrEqual(5);
    expect(tables.some((t) => t.includes('"Weird ""Schema"""'))).toBe(true);
    expect(await schemaObjects(tgt)).toEqual(await schemaObjects(src));
    // The source hands out 6 next from select_id_seq although a row with id 100 exists: the target
    // sequence never starts below the loaded maximum, so its next value is 101. The rest match.
    const [srcSeq, tgtSeq] = [await nextSequenceValues(src), await nextSequenceValues(tgt)];
    const selectSeq = '"Weird ""Schema""".select_id_seq';
    expect(srcSeq[selectSeq]).toBe('6');
    expect(tgtSeq).toEqual({ ...srcSeq, [selectSeq]: '101' });
  });
});
