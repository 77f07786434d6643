/**
 * The target DDL of a key redesign's new foreign keys (plan/key-redesign.ts). Pure text.
 *
 * The child's new column is filled once after the load, set-based, then kept right by two
 * trigger functions that run during CDC apply (`ENABLE ALWAYS`: the applier runs with
 * session_replication_role = replica) and after cutover:
 * - on the child, before a row is inserted, or updated with a new natural key or no link yet:
 *   look the parent up by the natural key;
 * - on the parent, after a row is inserted or its natural key changes: link the children that
 *   carry its natural key (a child may arrive before its parent in one source transaction, or
 *   in an earlier batch); after it is deleted or its natural key changes: unlink the children
 *   that pointed at it (a source without the relationship keeps such children).
 * The parent's surrogate key is never written by the applier, so it never changes on update.
 */
import type { ReferenceModel, TableModel } from '../../plan/schema-model';
import { createHash } from 'node:crypto';
import { fitIdentifier, qualifiedTable, quoteIdent, quoteLiteral } from '../../plan/sql-names';
import { qualifiedKey } from '../../plan/schema-model';
import type { Stmt } from './ddl';

export interface ReferenceStatements {
  indexes: Stmt[];
  backfills: Stmt[];
  foreignKeys: Stmt[];
  validate: Stmt[];
  triggers: Stmt[];
}

/**
 * The name of a function or trigger dbferry adds to the target: `dbferry_<digest>_<name>`, at
 * most 63 bytes. The digest of what it belongs to (`of`) keeps names apart that a cut to 63
 * bytes, or a parent shared by children of several schemas, would make meet.
 */
export function ownObjectName(of: readonly string[], name: string, taken = new Set<string>()): string {
  const digest = createHash('sha256').update(JSON.stringify(of)).digest('hex').slice(0, 8);
  return fitIdentifier(`dbferry_${digest}_${name}`, taken);
}

/** The trigger functions' names (and their triggers'), one pair per reference. */
export function linkFunctionNames(child: TableModel, ref: ReferenceModel): { child: string; parent: string } {
  const of = [child.schema, child.name, ref.column];
  const taken = new Set<string>();
  return { child: ownObjectName(of, `${ref.name}_child`, taken), parent: ownObjectName(of, `${ref.name}_parent`, taken) };
}

/** `row.c1 = other.p1 AND …` over the natural-key pairs. */
function naturalMatch(ref: ReferenceModel, child: string, parent: string): string {
  return ref.on.map(([c, p]) => `${parent}.${quoteIdent(p)} = ${child}.${quoteIdent(c)}`).join(' AND ');
}

function rowOf(alias: string, cols: string[]): string {
  return `(${cols.map((c) => `${alias}.${quoteIdent(c)}`).join(', ')})`;
}

export function referenceStatements(t: TableModel): ReferenceStatements {
  const out: ReferenceStatements = { indexes: [], backfills: [], foreignKeys: [], validate: [], triggers: [] };
  const key = qualifiedKey(t);
  const child = qualifiedTable(t.schema, t.name);
  for (const ref of t.references ?? []) {
    const parent = qualifiedTable(ref.parent.schema, ref.parent.name);
    const col = quoteIdent(ref.column);
    const pk = quoteIdent(ref.parentColumn);
    const childCols = ref.on.map(([c]) => c);
    const parentCols = ref.on.map(([, p]) => p);
    if (ref.naturalIndex) {
      out.indexes.push({ table: key, name: ref.naturalIndex, sql: `CREATE INDEX IF NOT EXISTS ${quoteIdent(ref.naturalIndex)} ON ${child} (${childCols.map(quoteIdent).join(', ')})` });
    }
    out.indexes.push({ table: key, name: ref.columnIndex, sql: `CREATE INDEX IF NOT EXISTS ${quoteIdent(ref.columnIndex)} ON ${child} (${col})` });
    // One statement over the whole table; on a retry it touches only rows not yet right.
    out.backfills.push({
      table: key,
      name: `${ref.column} from ${qualifiedKey(ref.parent)}`,
      sql: `UPDATE ONLY ${child} AS c SET ${col} = p.${pk} FROM ONLY ${parent} AS p WHERE ${naturalMatch(ref, 'c', 'p')} AND c.${col} IS DISTINCT FROM p.${pk}`,
    });
    out.foreignKeys.push({
      table: key,
      name: ref.name,
      sql: `ALTER TABLE ${child} ADD CONSTRAINT ${quoteIdent(ref.name)} FOREIGN KEY (${col}) REFERENCES ${parent} (${pk}) ON DELETE ${ref.onDelete.toUpperCase()} NOT VALID`,
    });
    out.validate.push({ table: key, name: ref.name, sql: `ALTER TABLE ${child} VALIDATE CONSTRAINT ${quoteIdent(ref.name)}` });

    const fn = linkFunctionNames(t, ref);
    const childFn = qualifiedTable(t.schema, fn.child);
    const parentFn = qualifiedTable(ref.parent.schema, fn.parent);
    const childBody = `BEGIN
  IF TG_OP = 'INSERT' OR NEW.${col} IS NULL OR ${rowOf('NEW', childCols)} IS DISTINCT FROM ${rowOf('OLD', childCols)} THEN
    NEW.${col} := (SELECT p.${pk} FROM ONLY ${parent} AS p WHERE ${naturalMatch(ref, 'NEW', 'p')});
  END IF;
  RETURN NEW;
END`;
    const naturalChanged = `${rowOf('NEW', parentCols)} IS DISTINCT FROM ${rowOf('OLD', parentCols)}`;
    const parentBody = `BEGIN
  IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND ${naturalChanged}) THEN
    UPDATE ONLY ${child} AS c SET ${col} = NULL WHERE c.${col} = OLD.${pk};
  END IF;
  IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND ${naturalChanged}) THEN
    UPDATE ONLY ${child} AS c SET ${col} = NEW.${pk} WHERE ${naturalMatch(ref, 'c', 'NEW')} AND c.${col} IS DISTINCT FROM NEW.${pk};
  END IF;
  RETURN NULL;
END`;
    const childTrigger = quoteIdent(fn.child);
    const parentTrigger = quoteIdent(fn.parent);
    out.triggers.push(
      { table: key, name: fn.child, sql: `CREATE OR REPLACE FUNCTION ${childFn}() RETURNS trigger LANGUAGE plpgsql AS ${quoteLiteral(childBody)}` },
      { table: key, name: fn.child, sql: `CREATE OR REPLACE TRIGGER ${childTrigger} BEFORE INSERT OR UPDATE ON ${child} FOR EACH ROW EXECUTE FUNCTION ${childFn}()` },
      { table: key, name: fn.child, sql: `ALTER TABLE ${child} ENABLE ALWAYS TRIGGER ${childTrigger}` },
      { table: qualifiedKey(ref.parent), name: fn.parent, sql: `CREATE OR REPLACE FUNCTION ${parentFn}() RETURNS trigger LANGUAGE plpgsql AS ${quoteLiteral(parentBody)}` },
      {
        table: qualifiedKey(ref.parent),
        name: fn.parent,
        sql: `CREATE OR REPLACE TRIGGER ${parentTrigger} AFTER INSERT OR UPDATE OR DELETE ON ${parent} FOR EACH ROW EXECUTE FUNCTION ${parentFn}()`,
      },
      { table: qualifiedKey(ref.parent), name: fn.parent, sql: `ALTER TABLE ${parent} ENABLE ALWAYS TRIGGER ${parentTrigger}` },
    );
  }
  return out;
}

/**
 * Child rows whose natural key names no parent (their link stays NULL): a count and a few
 * examples of the natural key, per reference. `examples` rows as `(c1, c2)` text.
 */
export function orphansQuery(t: TableModel, ref: ReferenceModel, examples: number): string {
  const child = qualifiedTable(t.schema, t.name);
  const childCols = ref.on.map(([c]) => c);
  const notNull = childCols.map((c) => `c.${quoteIdent(c)} IS NOT NULL`).join(' AND ');
  return `WITH o AS (SELECT ${rowOf('c', childCols)}::text AS natural_key FROM ONLY ${child} AS c WHERE c.${quoteIdent(ref.column)} IS NULL AND ${notNull})
SELECT (SELECT count(*) FROM o)::text AS n, ARRAY(SELECT DISTINCT natural_key FROM o ORDER BY 1 LIMIT ${examples}) AS examples`;
}

/**
 * Child rows whose link disagrees with their natural key: linked to a parent with another
 * natural key, to none that exists, or unlinked while a parent with their natural key exists. Validation
 * counts them: any is a difference.
 */
export function wrongLinksQuery(t: TableModel, ref: ReferenceModel): string {
  const child = qualifiedTable(t.schema, t.name);
  const parent = qualifiedTable(ref.parent.schema, ref.parent.name);
  const col = quoteIdent(ref.column);
  const pk = quoteIdent(ref.parentColumn);
  return `SELECT count(*)::text AS n FROM ONLY ${child} AS c
  LEFT JOIN ONLY ${parent} AS named ON ${naturalMatch(ref, 'c', 'named')}
 WHERE c.${col} IS DISTINCT FROM named.${pk}`;
}
