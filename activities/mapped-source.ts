/**
 * Table mappings at the engine seam. The recorded model is the target's (renamed schemas,
 * tables and columns, removed and added columns); a source engine reads the source's names.
 * This wraps an engine so that every table handed to it is first turned back into the source's
 * shape (sourceTable), and every change it streams is described in the target's names, without
 * the removed columns. Engines and the applier stay unaware of mappings.
 */
import type { Tuple } from './apply/tuple';
import { schemaChanged } from './apply/relations';
import { columnLocatorMatches, locatorMatches } from '../plan/table-selection';
import { qualifiedKey, sourceModel, sourceSequence, sourceTable, type SchemaModel, type TableModel } from '../plan/schema-model';
import type { ChangeEvent, ChangeSource, ChangeStream, SourceEngine, SourceReader, SourceRelation, SourceRowChange } from './engine';

/**
 * A DMS rule on columns, compiled: which source columns its locator matches. Rules are applied
 * when the tables are created; a column added on the source later that a rule would have
 * renamed or removed cannot be applied as the source names it.
 */
export interface ColumnRule {
  ruleId: string;
  matches: (schema: string, table: string, column: string) => boolean;
}

export function columnRules(rules: readonly unknown[]): ColumnRule[] {
  return rules.flatMap((rule) => {
    const r = (rule ?? {}) as Record<string, unknown>;
    const loc = (r['object-locator'] ?? {}) as Record<string, unknown>;
    if (r['rule-type'] !== 'transformation' || r['rule-target'] !== 'column' || typeof loc['column-name'] !== 'string') return [];
    const table = locatorMatches(String(loc['schema-name'] ?? '%'), String(loc['table-name'] ?? '%'));
    const column = columnLocatorMatches(loc['column-name']);
    return [{ ruleId: String(r['rule-id']), matches: (s: string, t: string, c: string) => table(s, t) && column(c) }];
  });
}

export function mappedSource(engine: SourceEngine, rules: ColumnRule[] = []): SourceEngine {
  return {
    name: engine.name,
    description: engine.description,
    preflight: (opts) => engine.preflight(opts),
    introspect: (opts) => engine.introspect(opts),
    async extents(tables) {
      const src = tables.map(sourceTable);
      const found = await engine.extents(src);
      const out = new Map<TableModel, NonNullable<ReturnType<typeof found.get>>>();
      tables.forEach((t, i) => {
        const e = found.get(src[i]!);
        if (e) out.set(t, e);
      });
      return out;
    },
    sampleKeys: (table, extent, chunks) => engine.sampleKeys(sourceTable(table), extent, chunks),
    holdReadPoint: (opts) => engine.holdReadPoint({ ...opts, tables: opts.tables.map(sourceTable) }),
    joinReadPoint: async (token) => mappedReader(await engine.joinReadPoint(token)),
    openReader: async () => mappedReader(await engine.openReader()),
    async sequenceStates(sequences) {
      const states = await engine.sequenceStates(sequences.map(sourceSequence));
      // One state per sequence, in order: back under the target's names.
      return states.map((s, i) => ({ ...sequences[i]!, lastValue: s.lastValue, isCalled: s.isCalled }));
    },
    cdc: mappedChanges(engine.cdc, rules),
    failure: (err, ctx) => engine.failure(err, ctx),
  };
}

function mappedReader(reader: SourceReader): SourceReader {
  return {
    get readPoint() {
      return reader.readPoint;
    },
    // The values travel unchanged (only names are mapped): their COPY form sums alike on the target.
    ...(reader.copyHashable ? { copyHashable: true } : {}),
    copyOut: (t, range, format) => reader.copyOut(sourceTable(t), range, format),
    checksum: (t, range, withChecksum) => reader.checksum(sourceTable(t), range, withChecksum),
    close: () => reader.close(),
  };
}

function mappedChanges(cdc: ChangeSource, rules: ColumnRule[]): ChangeSource {
  return {
    marksInStream: cdc.marksInStream,
    sendsCascadedChanges: cdc.sendsCascadedChanges,
    prepare: (opts) => cdc.prepare({ ...opts, model: sourceModel(opts.model) }),
    open: async (from, model, opts) => mappedStream(await cdc.open(from, sourceModel(model), opts), model, rules),
    compare: (a, b) => cdc.compare(a, b),
    distance: (a, b) => cdc.distance(a, b),
    now: () => cdc.now(),
    waitConfirmed: (timeoutMs, applied) => cdc.waitConfirmed(timeoutMs, applied),
    writeMarker: (content) => cdc.writeMarker(content),
    cleanup: (migration) => cdc.cleanup(migration),
  };
}

/** How one source relation's changes become the target table's: names, and the tuple positions kept. */
interface RelationMap {
  relation: SourceRelation;
  /** Positions of the source tuple the target keeps; undefined when it keeps them all. */
  keep?: number[];
}

/**
 * A relation event names the source table and its columns: the target's names replace them,
 * removed columns leave the relation and every tuple of its changes.
 */
export function mapRelation(m: SourceRelation, t: TableModel | undefined, rules: ColumnRule[] = []): RelationMap {
  if (!t) return { relation: m };
  const known = new Set([...t.columns.filter((c) => !c.added).map((c) => c.sourceName ?? c.name), ...(t.removedColumns ?? []).map((c) => c.name)]);
  for (const c of m.columns) {
    const rule = known.has(c.name) ? undefined : rules.find((r) => r.matches(m.schema, m.name, c.name));
    if (rule) {
      throw schemaChanged({
        table: qualifiedKey(t),
        difference: `column ${c.name} was added on the source and table-mapping rule ${rule.ruleId} matches it: rules are applied when the tables are created, not to columns added during CDC (add it on the target as the rule would, or drop it on the source)`,
      });
    }
  }
  const removed = new Set((t.removedColumns ?? []).map((c) => c.name));
  const bySourceName = new Map(t.columns.filter((c) => !c.added).map((c) => [c.sourceName ?? c.name, c]));
  const keep = m.columns.flatMap((c, i) => (removed.has(c.name) ? [] : [i]));
  const columns = keep.map((i) => {
    const c = m.columns[i]!;
    const target = bySourceName.get(c.name);
    if (!target) return c;
    // A retyped column arrives in its source type: the mapping's type is no schema change
    // (a source type other than the one mapped still is).
    const type = target.retypedFrom !== undefined && c.type === target.retypedFrom ? target.type : c.type;
    return target.name === c.name && type === c.type ? c : { ...c, name: target.name, type };
  });
  return {
    relation: { ...m, schema: t.schema, name: t.name, columns },
    ...(keep.length === m.columns.length ? {} : { keep }),
  };
}

function mappedStream(stream: ChangeStream, model: SchemaModel, rules: ColumnRule[]): ChangeStream {
  const bySource = new Map(model.tables.map((t) => [qualifiedKey(sourceTable(t)), t]));
  if (rules.length === 0 && ![...bySource].some(([key, t]) => key !== qualifiedKey(t) || t.removedColumns?.length || t.columns.some((c) => c.sourceName !== undefined || c.retypedFrom !== undefined))) return stream;
  const keeps = new Map<number, number[]>();
  const pick = (tuple: Tuple, keep: number[]): Tuple => keep.map((i) => tuple[i]!);
  const mapChange = (c: SourceRowChange): SourceRowChange => {
    const keep = keeps.get(c.relationId);
    if (!keep) return c;
    if (c.kind === 'insert') return { ...c, new: pick(c.new, keep) };
    if (c.kind === 'delete') return { ...c, old: { ...c.old, tuple: pick(c.old.tuple, keep) } };
    return { ...c, new: pick(c.new, keep), ...(c.old ? { old: { ...c.old, tuple: pick(c.old.tuple, keep) } } : {}) };
  };
  return {
    async *[Symbol.asyncIterator](): AsyncIterator<ChangeEvent[]> {
      for await (const batch of stream) {
        yield batch.map((e): ChangeEvent => {
          if (e.kind === 'relation') {
            const t = bySource.get(qualifiedKey(e.relation));
            // A table the migration does not have (a publication may hold more) could share its
            // source name with a migrated table's target name: it gets a name no table has.
            const mapped = t ? mapRelation(e.relation, t, rules) : { relation: { ...e.relation, schema: `\u0000not migrated: ${e.relation.schema}` } };
            if ('keep' in mapped && mapped.keep) keeps.set(e.relation.id, mapped.keep);
            else keeps.delete(e.relation.id);
            return { ...e, relation: mapped.relation };
          }
          return e.kind === 'change' ? { ...e, change: mapChange(e.change) } : e;
        });
      }
    },
    confirm: (position) => stream.confirm(position),
    sourcePosition: () => stream.sourcePosition(),
    state: () => stream.state(),
    close: () => stream.close(),
  };
}
