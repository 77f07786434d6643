import { withClient } from './databases';

/**
 * The test's own equality check, independent of dbferry's validation: row count and an
 * order-independent digest of every column (md5 of the sorted row hashes).
 */
export async function tableFingerprint(url: string, qualified: string): Promise<{ rows: string; digest: string }> {
  return withClient(url, async (c) => {
    await c.query("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 1");
    const r = await c.query(`SELECT count(*)::text AS rows, coalesce(md5(string_agg(h, '' ORDER BY h)), '') AS digest
                               FROM (SELECT md5(t::text) AS h FROM ${qualified} t) x`);
    return r.rows[0] as { rows: string; digest: string };
  });
}

export async function userTables(url: string): Promise<string[]> {
  return withClient(url, async (c) => {
    const r = await c.query(`SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables
                              WHERE schemaname NOT IN ('pg_catalog', 'information_schema', '_dbferry') AND schemaname NOT LIKE 'pg\\_temp\\_%' ORDER BY 1`);
    return r.rows.map((x: { t: string }) => x.t);
  });
}

/** Constraints (primary, unique, check, foreign, exclusion) and indexes, as their definitions. */
export async function schemaObjects(url: string): Promise<{ constraints: string[]; indexes: string[] }> {
  return withClient(url, async (c) => {
    const k = await c.query(`SELECT format('%s.%s %s: %s', n.nspname, t.relname, k.conname, pg_get_constraintdef(k.oid)) AS d
                               FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
                              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', '_dbferry') AND k.contype IN ('p','u','c','f','x')
                              ORDER BY 1`);
    const i = await c.query(`SELECT indexdef AS d FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog', 'information_schema', '_dbferry') ORDER BY 1`);
    return { constraints: k.rows.map((r: { d: string }) => r.d), indexes: i.rows.map((r: { d: string }) => r.d) };
  });
}

/** Every sequence's next value (consumes one value on that side). */
export async function nextSequenceValues(url: string): Promise<Record<string, string>> {
  return withClient(url, async (c) => {
    const seqs = await c.query(`SELECT format('%I.%I', schemaname, sequencename) AS s FROM pg_sequences
                                 WHERE schemaname NOT IN ('_dbferry') ORDER BY 1`);
    const out: Record<string, string> = {};
    for (const { s } of seqs.rows as { s: string }[]) {
      const r = await c.query('SELECT nextval($1::regclass)::text AS v', [s]);
      out[s] = r.rows[0].v;
    }
    return out;
  });
}

/**
 * The target has exactly `tables` (by default the source's), and each equals its source by
 * count and digest. Returns the tables compared.
 */
export async function expectSameTables(source: string, target: string, tables?: string[]): Promise<string[]> {
  const expected = tables ?? (await userTables(source));
  expect(await userTables(target)).toEqual(expected);
  for (const t of expected) {
    const [a, b] = await Promise.all([tableFingerprint(source, t), tableFingerprint(target, t)]);
    expect({ table: t, ...b }).toEqual({ table: t, ...a });
  }
  return expected;
}

/**
 * `pg_dump --schema-only` of some schemas as the test's own oracle of "the same schema": each
 * object's entry (its `-- Name:` header and its statements; SET lines and pg_dump's \restrict
 * guards removed), sorted, since pg_dump orders objects of one kind partly by creation order.
 */
export async function schemaDump(url: string, schemas: string[], opts: { privileges?: boolean } = {}): Promise<string> {
  const { findPgTools } = await import('../../activities/postgres/pg-tools');
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const tools = await findPgTools();
  const args = ['--schema-only', '--no-owner', ...(opts.privileges ? [] : ['--no-privileges']), ...schemas.flatMap((s) => ['-n', `"${s.replace(/"/g, '""')}"`]), `--dbname=${url}`];
  const { stdout } = await promisify(execFile)(tools.pgDump, args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout
    .split(/^(?=-- Name: )/m)
    .map((entry) =>
      entry
        .split('\n')
        .filter((l) => l.trim() !== '' && (l.startsWith('-- Name: ') || !l.startsWith('--')) && !/^(SET |SELECT pg_catalog\.set_config|\\(un)?restrict )/.test(l))
        .join('\n'),
    )
    .filter((entry) => entry !== '')
    .sort()
    .join('\n\n');
}
