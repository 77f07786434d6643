/**
 * Key redesign (`keys:` in the plan): a table gets a single-column surrogate primary key (its
 * source key stays as a unique constraint, and stays how rows are found in the source and in
 * CDC), and a child table gets a column referencing the parent's surrogate key, filled by
 * looking the parent up through the natural key the source relates them by. Pure: it turns the
 * source's schema model into the target's, or says which field of the plan is wrong.
 */
import type { KeySpec } from './plan-schema';
import { qualifiedKey, type ColumnModel, type QualifiedName, type ReferenceModel, type SchemaModel, type TableModel } from './schema-model';
import { fitIdentifier } from './sql-names';
import { locatorMatches, parseTablePattern } from './table-selection';

export interface KeyIssue {
  /** The plan field, e.g. `keys[1].references[0].on.order_no`. */
  path: string;
  message: string;
}

export type RedesignResult = { ok: true; model: SchemaModel } | { ok: false; issues: KeyIssue[] };

/** A table named by `keys[i].table` (validated as exact `schema.table` by the plan schema). */
function tableOf(text: string): QualifiedName | undefined {
  const r = parseTablePattern(text);
  if (!r.ok || !('exact' in r.pattern.schema) || !('exact' in r.pattern.table)) return undefined;
  return { schema: r.pattern.schema.exact, name: r.pattern.table.exact };
}

/**
 * `keys` entries naming a table that a DMS `define-primary-key` rule also shapes: one table's
 * key is designed in one place. Plan-level (no source needed): table names are exact, locators
 * are DMS `%` patterns.
 */
export function keysAlsoDefinedByRules(keys: readonly { table?: unknown }[], rules: readonly unknown[]): KeyIssue[] {
  const definers = rules.flatMap((rule) => {
    const r = (rule ?? {}) as Record<string, unknown>;
    if (r['rule-type'] !== 'transformation' || r['rule-action'] !== 'define-primary-key') return [];
    const loc = (r['object-locator'] ?? {}) as Record<string, unknown>;
    if (typeof loc['schema-name'] !== 'string' || typeof loc['table-name'] !== 'string') return [];
    return [{ ruleId: String(r['rule-id'] ?? r['rule-name'] ?? '?'), matches: locatorMatches(loc['schema-name'], loc['table-name']) }];
  });
  const out: KeyIssue[] = [];
  keys.forEach((k, i) => {
    const t = typeof k.table === 'string' ? tableOf(k.table) : undefined;
    const definer = t && definers.find((d) => d.matches(t.schema, t.name));
    if (definer) out.push({ path: `keys[${i}].table`, message: `${String(k.table)} also gets its primary key from table-mapping rule ${definer.ruleId} (define-primary-key): design its key in one place, keys or the rule` });
  });
  return out;
}

/** The referential action of the source's own foreign key from `child` to `parent` over the same columns, if it has one. */
function sourceOnDelete(child: TableModel, parent: QualifiedName, on: [string, string][]): ReferenceModel['onDelete'] {
  for (const f of child.foreignKeys) {
    if (!f.references || qualifiedKey(f.references) !== qualifiedKey(parent)) continue;
    const m = /^FOREIGN KEY \((.*?)\) REFERENCES /.exec(f.definition);
    const cols = m?.[1]?.split(',').map((c) => c.trim().replace(/^"(.*)"$/, (_x, inner: string) => inner.replace(/""/g, '"')));
    if (!cols || cols.length !== on.length || !on.every(([c]) => cols.includes(c))) continue;
    if (/\bON DELETE CASCADE\b/.test(f.definition)) return 'cascade';
  }
  // No relationship on the source (or one that refuses or nulls): a deleted parent leaves its
  // children there, and their link to a parent that is gone becomes NULL.
  return 'set null';
}

/** The target's model after `keys`, or what in `keys` does not fit the source's tables. */
export function redesignKeys(model: SchemaModel, keys: readonly KeySpec[]): RedesignResult {
  if (keys.length === 0) return { ok: true, model };
  const issues: KeyIssue[] = [];
  const tables = new Map(model.tables.map((t) => [qualifiedKey(t), { ...t, columns: [...t.columns], uniques: [...t.uniques], indexes: [...t.indexes] }]));
  const seen = new Map<string, number>();
  // Constraint and index names share one namespace per schema.
  const namesBySchema = new Map<string, Set<string>>();
  const namesIn = (schema: string) => {
    let s = namesBySchema.get(schema);
    if (!s) {
      s = new Set<string>();
      for (const t of model.tables) {
        if (t.schema !== schema) continue;
        for (const k of [t.primaryKey, ...t.uniques, ...t.checks, ...t.exclusions, ...t.foreignKeys, ...t.indexes]) if (k) s.add(k.name);
      }
      namesBySchema.set(schema, s);
    }
    return s;
  };
  const located: { spec: KeySpec; i: number; table: TableModel & { columns: ColumnModel[] } }[] = [];

  keys.forEach((spec, i) => {
    const name = tableOf(spec.table);
    const table = name ? tables.get(qualifiedKey(name)) : undefined;
    if (!name || !table) {
      issues.push({ path: `keys[${i}].table`, message: `${spec.table} is not one of the migrated tables (check tables.include / the selection rules)` });
      return;
    }
    const key = qualifiedKey(table);
    if (seen.has(key)) {
      issues.push({ path: `keys[${i}].table`, message: `${spec.table} is already redesigned by keys[${seen.get(key)}]: give each table one entry` });
      return;
    }
    seen.set(key, i);
    located.push({ spec, i, table });
  });

  // Surrogate keys first: references name them.
  for (const { spec, i, table } of located) {
    const sk = spec.surrogateKey;
    if (!sk) continue;
    const path = `keys[${i}].surrogateKey`;
    if (table.partitioned || table.partitionOf || table.inherits?.length) {
      issues.push({ path: `keys[${i}].table`, message: `${spec.table} is partitioned, a partition or an inheritance child: a surrogate key there must include the partition key (not supported)` });
      continue;
    }
    if (table.columns.some((c) => c.name === sk.column)) {
      issues.push({ path: `${path}.column`, message: `${spec.table} already has a column ${sk.column}: name the new key column differently` });
      continue;
    }
    const type = sk.type;
    table.columns.unshift({
      name: sk.column,
      type,
      notNull: true,
      ...(type === 'bigint' ? { identity: 'by-default' as const } : { default: 'gen_random_uuid()' }),
      binaryCopySafe: true,
      added: { kind: 'surrogate-key' },
    });
    const names = namesIn(table.schema);
    const natural = table.primaryKey?.columns ?? [];
    table.surrogateKey = {
      column: sk.column,
      type,
      // The key keeps the source key's name; the source key, now unique, gets PostgreSQL's usual one.
      primaryKeyName: table.primaryKey?.name ?? fitIdentifier(`${table.name}_pkey`, names),
      ...(natural.length > 0 ? { naturalKeyName: fitIdentifier(`${table.name}_${natural.join('_')}_key`, names) } : {}),
    };
  }

  for (const { spec, i, table } of located) {
    spec.references?.forEach((ref, j) => {
      const path = `keys[${i}].references[${j}]`;
      if (table.partitioned || table.partitionOf || table.inherits?.length || model.tables.some((x) => x.inherits?.some((p) => qualifiedKey(p) === qualifiedKey(table)))) {
        issues.push({ path: `keys[${i}].table`, message: `${spec.table} is partitioned, a partition or in an inheritance tree: a new reference column there is not supported` });
        return;
      }
      const parentName = tableOf(ref.parent);
      const parent = parentName ? tables.get(qualifiedKey(parentName)) : undefined;
      if (!parentName || !parent) {
        issues.push({ path: `${path}.parent`, message: `${ref.parent} is not one of the migrated tables` });
        return;
      }
      if (!parent.surrogateKey) {
        issues.push({ path: `${path}.parent`, message: `${ref.parent} has no surrogate key to reference: add a keys entry for it with surrogateKey` });
        return;
      }
      if (table.columns.some((c) => c.name === ref.column) || table.references?.some((r) => r.column === ref.column)) {
        issues.push({ path: `${path}.column`, message: `${spec.table} already has a column ${ref.column}: name the new reference column differently` });
        return;
      }
      const on = Object.entries(ref.on);
      let bad = false;
      for (const [childCol, parentCol] of on) {
        const c = table.columns.find((x) => x.name === childCol && !x.added);
        const p = parent.columns.find((x) => x.name === parentCol && !x.added);
        if (!c) issues.push({ path: `${path}.on.${childCol}`, message: `${spec.table} has no column ${childCol}` });
        else if (!p) issues.push({ path: `${path}.on.${childCol}`, message: `${ref.parent} has no column ${parentCol}` });
        else if (c.type !== p.type) issues.push({ path: `${path}.on.${childCol}`, message: `${spec.table}.${childCol} is ${c.type} but ${ref.parent}.${parentCol} is ${p.type}: a natural key must compare like for like` });
        bad ||= !c || !p || c.type !== p.type;
      }
      if (bad) return;
      const natural = parent.primaryKey?.columns ?? [];
      const parentCols = on.map(([, p]) => p);
      if (natural.length === 0 || natural.length !== parentCols.length || !natural.every((n) => parentCols.includes(n))) {
        issues.push({
          path: `${path}.on`,
          message: natural.length
            ? `expected the parent's key columns (${natural.join(', ')}) as the parent side: other columns may find several parents`
            : `${ref.parent} has no primary key on the source to find a parent by`,
        });
        return;
      }
      const names = namesIn(table.schema);
      const pairs = on as [string, string][];
      const childCols = pairs.map(([c]) => c);
      const keyPrefix = table.primaryKey?.columns?.slice(0, childCols.length) ?? [];
      const covered = keyPrefix.length === childCols.length && childCols.every((c) => keyPrefix.includes(c));
      const reference: ReferenceModel = {
        column: ref.column,
        parent: { schema: parent.schema, name: parent.name },
        parentColumn: parent.surrogateKey.column,
        on: pairs,
        name: fitIdentifier(`${table.name}_${ref.column}_fkey`, names),
        onDelete: sourceOnDelete(table, parent, pairs),
        ...(covered ? {} : { naturalIndex: fitIdentifier(`${table.name}_${childCols.join('_')}_idx`, names) }),
        columnIndex: fitIdentifier(`${table.name}_${ref.column}_idx`, names),
      };
      table.columns.push({
        name: ref.column,
        type: parent.surrogateKey.type,
        notNull: false,
        binaryCopySafe: true,
        added: { kind: 'reference', parent: reference.parent },
      });
      table.references = [...(table.references ?? []), reference];
    });
  }

  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, model: { ...model, tables: model.tables.map((t) => tables.get(qualifiedKey(t))!) } };
}
