import type { Client } from 'pg';
import { qualifiedKey, type QualifiedName, type SchemaModel } from '../../plan/schema-model';
import type { ChangeEvent, ChangeStream, EnginePosition, SourceRelation, SourceRowChange } from '../engine';
import { closeQuietly, connect, type PgEndpoint } from '../pg/connection';
import { toFailure } from '../pg/errors';
import { openReplicationStream } from './cdc/replication';
import type { PgoutputMessage } from './cdc/types';
import { lsnOf, pgPosition } from './position';

/** The prefix of dbferry's logical messages (pg_logical_emit_message); the content is the marker. */
export const MARKER_PREFIX = 'dbferry';

type RelationMessage = Extract<PgoutputMessage, { tag: 'relation' }>;

/** pgoutput streams in-progress transactions from PostgreSQL 14 (protocol 2). */
const STREAMING_SINCE = 140000;

/**
 * pgoutput as engine-neutral change events: the replication stream from the slot, each message
 * translated (positions as `postgres:` text, relation messages resolved into the target's type
 * names and the source's column defaults). The consumer pulls; the stream reads ahead a few
 * frames at most (back-pressure).
 */
export async function openPgChangeStream(
  src: PgEndpoint,
  /** `streaming`: large transactions in pieces while they run, when the source has it (14+). */
  opts: { slot: string; publication: string; from: EnginePosition; model?: SchemaModel; streaming?: boolean },
): Promise<ChangeStream> {
  const family = opts.model ? childrenOf(opts.model) : new Map<string, Family>();
  let catalog: Client | undefined;
  // One connection to the source's catalog, for relation types and the source's position.
  const onCatalog = async <T>(doing: string, fn: (c: Client) => Promise<T>): Promise<T> => {
    try {
      catalog ??= await connect(src, { purpose: 'cdc catalog' });
      return await fn(catalog);
    } catch (err) {
      // A dead connection is opened again next time.
      if (catalog && !(err as { code?: string }).code) {
        await closeQuietly(catalog);
        catalog = undefined;
      }
      throw toFailure(err, 'source', { endpoint: src.description, secrets: src.secrets, doing });
    }
  };
  const describe = (m: RelationMessage) => onCatalog(`reading the columns of ${m.schema}.${m.name}`, (c) => describeRelation(c, m));
  const streaming =
    !!opts.streaming &&
    (await onCatalog('reading the server version', async (c) => Number((await c.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]!.v))) >=
      STREAMING_SINCE;
  const stream = await openReplicationStream(src, {
    slot: opts.slot,
    publication: opts.publication,
    startLsn: lsnOf(opts.from),
    purpose: 'cdc',
    streaming,
  }).catch(async (err: unknown) => {
    await closeQuietly(catalog);
    throw err;
  });

  // Plain assignments rather than spreads: this runs once per change, and a 1M-row backlog
  // showed its allocations in the worker's profile.
  async function* batches(): AsyncGenerator<ChangeEvent[], void, undefined> {
    for await (const frames of stream) {
      const out: ChangeEvent[] = [];
      for (const w of frames) {
        const m = w.message;
        // Inside a stream block: the (sub)transaction each event belongs to.
        const xid = 'xid' in m && m.tag !== 'begin' ? m.xid : undefined;
        switch (m.tag) {
          case 'keepalive':
            out.push({ kind: 'idle', position: pgPosition(w.walEnd) });
            break;
          case 'stream-start':
            out.push({ kind: 'stream-start', xid: m.xid, first: m.first });
            break;
          case 'stream-stop':
            out.push({ kind: 'stream-stop' });
            break;
          case 'stream-commit':
            out.push({ kind: 'stream-commit', xid: m.xid, commitPosition: pgPosition(m.commitLsn), endPosition: pgPosition(m.endLsn), commitTimeMicros: m.commitTime });
            break;
          case 'stream-abort':
            out.push({ kind: 'stream-abort', xid: m.xid, subxid: m.subxid });
            break;
          case 'begin':
            out.push({ kind: 'begin', commitPosition: pgPosition(m.finalLsn), commitTimeMicros: m.commitTime });
            break;
          case 'commit':
            out.push({ kind: 'commit', commitPosition: pgPosition(m.commitLsn), endPosition: pgPosition(m.endLsn), commitTimeMicros: m.commitTime });
            break;
          case 'relation':
            out.push(inXact<ChangeEvent & { kind: 'relation' }>(xid, { kind: 'relation', relation: await describe(m) }));
            break;
          case 'insert':
            out.push(inXact<ChangeEvent & { kind: 'change' }>(xid, { kind: 'change', position: pgPosition(w.walStart), change: { kind: 'insert', relationId: m.relationId, new: m.new } }));
            break;
          case 'update': {
            const change: SourceRowChange & { kind: 'update' } = { kind: 'update', relationId: m.relationId, new: m.new };
            if (m.old) change.old = { whole: m.old.kind === 'O', tuple: m.old.tuple };
            out.push(inXact<ChangeEvent & { kind: 'change' }>(xid, { kind: 'change', position: pgPosition(w.walStart), change }));
            break;
          }
          case 'delete':
            out.push(
              inXact<ChangeEvent & { kind: 'change' }>(xid, {
                kind: 'change',
                position: pgPosition(w.walStart),
                change: { kind: 'delete', relationId: m.relationId, old: { whole: m.old.kind === 'O', tuple: m.old.tuple } },
              }),
            );
            break;
          case 'truncate':
            out.push(inXact<ChangeEvent & { kind: 'truncate' }>(xid, { kind: 'truncate', relationIds: m.relationIds, restartIdentity: m.restartIdentity, position: pgPosition(w.walStart) }));
            break;
          case 'message':
            if (m.transactional && m.prefix === MARKER_PREFIX) out.push(inXact<ChangeEvent & { kind: 'marker' }>(xid, { kind: 'marker', content: m.content.toString('utf8'), position: pgPosition(m.lsn) }));
            break;
          default:
            break;
        }
      }
      if (out.length > 0) yield out;
    }
  }

  return {
    [Symbol.asyncIterator]: () => batches(),
    confirm: (p) => stream.confirm(lsnOf(p)),
    sourcePosition: () => (stream.lastServerWalEnd > 0n ? pgPosition(stream.lastServerWalEnd) : undefined),
    state: () =>
      onCatalog('reading the source position', async (c) => {
        const r = await c.query<{ lsn: string; retained: string | null }>(
          `SELECT pg_current_wal_lsn()::text AS lsn,
                  (SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text FROM pg_replication_slots WHERE slot_name = $1) AS retained`,
          [opts.slot],
        );
        const structureChanged = family.size > 0 ? await familyChanges(c, family) : [];
        return {
          position: pgPosition(r.rows[0]!.lsn),
          retainedBytes: Number(r.rows[0]!.retained ?? 0),
          retainedBy: `replication slot ${opts.slot}`,
          ...(structureChanged.length > 0 ? { structureChanged } : {}),
        };
      }),
    close: async () => {
      await stream.close();
      await closeQuietly(catalog);
    },
  };
}

/**
 * The relation's column types as the target names them (format_type of the stream's type OIDs
 * and modifiers), and, from the catalog as it is now, what an added column would need: its
 * nullability and its default, which the target can take only when the source stored it as a
 * "missing value" (a constant that existing rows read without a rewrite).
 */
async function describeRelation(c: Client, m: RelationMessage): Promise<SourceRelation> {
  const r = await c.query<{ type: string; not_null: boolean | null; def: string | null; has_missing: boolean | null }>(
    `SELECT format_type(x.o, x.m) AS type, a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS def, a.atthasmissing AS has_missing
       FROM unnest($1::oid[], $2::int[], $3::text[]) WITH ORDINALITY AS x(o, m, n, i)
       LEFT JOIN pg_attribute a ON a.attrelid = $4 AND a.attname = x.n AND NOT a.attisdropped
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      ORDER BY x.i`,
    [m.columns.map((x) => x.typeOid), m.columns.map((x) => x.typmod), m.columns.map((x) => x.name), m.relationId],
  );
  return {
    id: m.relationId,
    schema: m.schema,
    name: m.name,
    fullIdentity: m.replicaIdentity === 'f',
    columns: m.columns.map((col, i) => {
      const row = r.rows[i]!;
      return {
        name: col.name,
        type: row.type,
        notNull: !!row.not_null,
        ...(row.def !== null && row.has_missing ? { storedDefault: row.def } : {}),
        volatileDefault: row.def !== null && !row.has_missing,
      };
    }),
  };
}

interface Family {
  parent: QualifiedName;
  /** The children's qualifiedKeys. */
  children: Set<string>;
}

/** Each migrated parent (partitioned, or with inheritance children) and its children in the model. */
function childrenOf(model: SchemaModel): Map<string, Family> {
  const out = new Map<string, Family>();
  const add = (p: QualifiedName) => {
    if (!out.has(qualifiedKey(p))) out.set(qualifiedKey(p), { parent: { schema: p.schema, name: p.name }, children: new Set() });
    return out.get(qualifiedKey(p))!;
  };
  for (const t of model.tables) if (t.partitioned) add(t);
  for (const t of model.tables) {
    for (const p of [...(t.partitionOf ? [t.partitionOf.parent] : []), ...(t.inherits ?? [])]) add(p).children.add(qualifiedKey(t));
  }
  return out;
}

/**
 * A partition attached or detached (or a child made or unmade) on the source since the model:
 * its rows would silently go missing from, or stay in, the parent on the target.
 */
async function familyChanges(c: Client, family: Map<string, Family>): Promise<string[]> {
  const parents = [...family.keys()];
  const r = await c.query<{ parent: string; child: string }>(
    `SELECT x.k AS parent, cn.nspname || '.' || ch.relname AS child
       FROM unnest($1::text[], $2::text[], $3::text[]) AS x(k, s, n)
       JOIN pg_namespace pn ON pn.nspname = x.s JOIN pg_class p ON p.relnamespace = pn.oid AND p.relname = x.n
       JOIN pg_inherits i ON i.inhparent = p.oid
       JOIN pg_class ch ON ch.oid = i.inhrelid JOIN pg_namespace cn ON cn.oid = ch.relnamespace
      WHERE ch.relkind IN ('r', 'p')`,
    [parents, parents.map((k) => family.get(k)!.parent.schema), parents.map((k) => family.get(k)!.parent.name)],
  );
  const now = new Map<string, Set<string>>(parents.map((p) => [p, new Set()]));
  for (const row of r.rows) now.get(row.parent)!.add(row.child);
  const out: string[] = [];
  for (const [parent, { children: expected }] of family) {
    const seen = now.get(parent)!;
    for (const c of seen) if (!expected.has(c)) out.push(`${c} was attached to ${parent} on the source`);
    for (const c of expected) if (!seen.has(c)) out.push(`${c} was detached from ${parent} on the source`);
  }
  return out;
}

/** `e` with the (sub)transaction of a stream block, when it has one. */
function inXact<E extends { xid?: number }>(xid: number | undefined, e: E): E {
  if (xid !== undefined) e.xid = xid;
  return e;
}
