import type { ChecksumMethod } from '../engine';
import type { Client } from 'pg';
import { sourceColumns, type ColumnModel, type TableModel } from '../../plan/schema-model';
import { qualifiedTable, quoteIdent } from '../../plan/sql-names';
import { StringDecoder } from 'node:string_decoder';
import { pgCanonical, pgCanonicalChecksumSql } from '../cross-engine/canonical';
import { JsonDigest, jsonRowKey } from '../cross-engine/json-digest';
import { copyOutStream } from './copy-out-stream';
import { copyFormat, CopyRowHash } from './copy-hash';

/**
 * How a table's rows are summed into a checksum (engine.ts's ChecksumMethod); the ledger records
 * which one the source used and validation runs the same on the target.
 * - `record-hash`: each row hashed by its columns' own hash functions (hash_record_extended,
 *   PostgreSQL 14+): no text conversion, about twice as fast. Only for types whose hash is a
 *   function of the value alone and stable across servers and versions (hash partitioning
 *   depends on that); any other column (an enum hashes its OID, which differs between servers;
 *   user types, json, geometry) enters the row as its text form.
 * - `text-hash`: each row's text form hashed; any type, PostgreSQL 11+.
 */
export type { ChecksumMethod };

const VALUE_HASHED = new Set([
  'smallint', 'integer', 'bigint', 'numeric', 'real', 'double precision', 'boolean',
  'text', 'character varying', 'character', 'bytea', 'uuid', 'jsonb', 'inet', 'cidr', 'macaddr', 'macaddr8',
  'date', 'timestamp without time zone', 'timestamp with time zone', 'time without time zone', 'interval',
]);

/** The built-in type a rendered column type names, without modifiers and array brackets. */
function baseType(type: string): string {
  return type.replace(/(\[\])+$/, '').replace(/\(\d+(,\s*\d+)?\)/, '').replace(/\s+/g, ' ').trim();
}

function hashedColumn(c: ColumnModel): string {
  const col = quoteIdent(c.name);
  // A column a mapping retyped has one type on each side: only its text compares.
  if (!VALUE_HASHED.has(baseType(c.type)) || c.retypedFrom !== undefined) return `${col}::text`;
  // A column collation may be nondeterministic (it hashes a sort key): compare the bytes.
  return c.collation && /^(text|character)/.test(baseType(c.type)) ? `(${col} COLLATE "C")` : col;
}

/**
 * Row count and an order-independent checksum of every column: the sum of a 64-bit hash of
 * each row, so equal rows give equal sums whatever their physical order. Both sides run the
 * text form with the same session settings (connection.ts).
 * ONLY: like COPY, an inheritance parent's own rows, not its children's; `only` false reads it
 * as an application does, with its partitions' or children's rows (over the parent's columns).
 */
export function checksumQuery(t: TableModel, withChecksum: boolean, where = '', method: ChecksumMethod = 'text-hash', only = true): string {
  const from = `FROM ${only ? 'ONLY ' : ''}${qualifiedTable(t.schema, t.name)}${where}`;
  if (method === 'canonical-md5') return pgCanonicalChecksumSql(sourceColumns(t), from, withChecksum);
  if (method === 'copy-hash' && withChecksum) throw new Error('copy-hash is summed over a COPY stream, not by a query (targetChecksum)');
  if (!withChecksum) return `SELECT count(*)::text AS rows, NULL::text AS checksum ${from}`;
  // Generated columns count (both sides compute them); columns only the target has do not.
  const cols = t.columns.filter((c) => c.added === undefined);
  const hash =
    method === 'record-hash'
      ? `hash_record_extended(ROW(${cols.map(hashedColumn).join(', ')}), 0)`
      : `hashtextextended(ROW(${cols.map((c) => quoteIdent(c.name)).join(', ')})::text, 0)`;
  return `SELECT count(*)::text AS rows, coalesce(sum(${hash}), 0)::text AS checksum ${from}`;
}

/**
 * The target's count and checksum of a table (its rows `where`) by `method`, as the source
 * computed them. With `canonical-md5`, JSON documents are digested here from their text, as the
 * source's were (cross-engine/json-digest.ts), streamed so memory stays bounded.
 */
export async function targetChecksum(c: Client, t: TableModel, withChecksum: boolean, where: string, method: ChecksumMethod, only = true): Promise<{ rows: string; checksum: string | null }> {
  if (method === 'copy-hash' && withChecksum) return copyChecksum(c, t, where, only);
  const r = (await c.query<{ rows: string; checksum: string | null }>(checksumQuery(t, withChecksum, where, method, only))).rows[0]!;
  const { key, json } = jsonRowKey(t);
  if (method !== 'canonical-md5' || r.checksum === null || json.length === 0) return r;
  const digest = new JsonDigest();
  // One JSON array per row of its key's canonical texts and its documents' texts: COPY text
  // escapes only its backslashes (json escapes every control character).
  const row = `json_build_array(${[...key.map(pgCanonical), ...json.map((col) => `${quoteIdent(col.name)}::text`)].join(', ')})::text`;
  const out = c.query(copyOutStream(`COPY (SELECT ${row} FROM ${only ? 'ONLY ' : ''}${qualifiedTable(t.schema, t.name)}${where}) TO STDOUT`));
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of out as AsyncIterable<Buffer>) {
    const lines = (rest + decoder.write(chunk)).split('\n');
    rest = lines.pop()!;
    for (const line of lines) {
      const values = JSON.parse(line.replace(/\\\\/g, '\\')) as Array<string | null>;
      digest.addRow(values.slice(0, key.length), values.slice(key.length));
    }
  }
  if (rest + decoder.end()) throw new Error(`${qualifiedTable(t.schema, t.name)}: the JSON documents' COPY ended mid-row`);
  return { rows: r.rows, checksum: digest.addTo(r.checksum!) };
}

/**
 * `copy-hash` on the target: its rows of the columns the loader copied, in the format it copied
 * them in, summed as the loader summed the source's stream.
 */
async function copyChecksum(c: Client, t: TableModel, where: string, only: boolean): Promise<{ rows: string; checksum: string }> {
  const cols = sourceColumns(t).map((col) => quoteIdent(col.name)).join(', ');
  const hash = new CopyRowHash(copyFormat(t));
  const out = c.query(copyOutStream(`COPY (SELECT ${cols} FROM ${only ? 'ONLY ' : ''}${qualifiedTable(t.schema, t.name)}${where}) TO STDOUT WITH (FORMAT ${copyFormat(t)})`));
  for await (const chunk of out as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.finish();
}

const versions = new WeakMap<Client, number>();

/**
 * The source side's count and checksum, inside the caller's transaction (its snapshot): the
 * record hash where the server has it (14+), else the text form.
 */
export async function sourceChecksum(c: Client, t: TableModel, where = '', only = true): Promise<{ rows: string; checksum: string; method: ChecksumMethod }> {
  let version = versions.get(c);
  if (version === undefined) {
    version = Number((await c.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]!.v);
    versions.set(c, version);
  }
  const method: ChecksumMethod = version >= 140000 ? 'record-hash' : 'text-hash';
  const r = await c.query<{ rows: string; checksum: string }>(checksumQuery(t, true, where, method, only));
  return { ...r.rows[0]!, method };
}
