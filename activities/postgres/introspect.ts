/**
 * Reads a PostgreSQL database's catalog into the neutral schema model.
 *
 * Every SQL fragment is produced by the server's own deparsers (format_type, pg_get_expr,
 * pg_get_constraintdef, pg_get_indexdef) while search_path holds only pg_catalog: they then
 * qualify and quote every user object, so the fragments mean the same on a target whatever its
 * search_path.
 */
import type { ClientBase } from 'pg';
import type {
  ColumnModel,
  ConstraintModel,
  ExtensionModel,
  IndexModel,
  QualifiedName,
  SchemaModel,
  SequenceModel,
  TableModel,
  TypeModel,
} from '../../plan/schema-model';
import { qualifiedTable, quoteIdent, quoteLiteral } from '../../plan/sql-names';

/** The model plus what introspection left out or could not represent, for the operator. */
export interface IntrospectedSchema extends SchemaModel {
  warnings: string[];
}

/** OIDs below this are assigned at initdb and are the same on every server. */
const FIRST_NORMAL_OBJECT_ID = 16384;
const RECORD_OID = 2249;

export async function introspectPostgres(
  client: ClientBase,
  select: (schema: string, table: string) => boolean,
): Promise<IntrospectedSchema> {
  const run = () => new Introspection(client, select).run();
  switch (client.getTransactionStatus()) {
    case 'I': {
      // Our own transaction: one consistent view of the catalog, and SET LOCAL ends with it.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      try {
        await client.query('SET LOCAL search_path = pg_catalog');
        const model = await run();
        await client.query('COMMIT');
        return model;
      } catch (e) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw e;
      }
    }
    case 'T': {
      // Inside the caller's transaction (e.g. one that imported the load snapshot): rolling back
      // to a savepoint undoes our SET LOCAL, whether the caller had a local or session value,
      // and leaves the transaction usable even when a query of ours failed.
      await client.query('SAVEPOINT dbferry_introspect');
      try {
        await client.query('SET LOCAL search_path = pg_catalog');
        return await run();
      } finally {
        await client.query('ROLLBACK TO SAVEPOINT dbferry_introspect');
        await client.query('RELEASE SAVEPOINT dbferry_introspect');
      }
    }
    case 'E':
      throw new Error('cannot introspect: the connection is in a failed transaction');
    default: {
      // Transaction state unknown: a session-level setting, restored afterwards.
      const { rows } = await client.query<{ sp: string }>(`SELECT pg_catalog.current_setting('search_path') AS sp`);
      await client.query(`SELECT pg_catalog.set_config('search_path', 'pg_catalog', false)`);
      try {
        return await run();
      } finally {
        await client.query(`SELECT pg_catalog.set_config('search_path', $1, false)`, [rows[0].sp]);
      }
    }
  }
}

interface TableRow {
  oid: number;
  schema: string;
  name: string;
  relkind: string;
  relispartition: boolean;
  /** Partitioned tables: the key as pg_get_partkeydef renders it. */
  partkey: string | null;
  /** Partitions: the parent and the bound as pg_get_expr renders it. */
  parent_schema: string | null;
  parent_name: string | null;
  bound: string | null;
  /** Inheritance children (not partitions): their parents in order. */
  inherits: { schema: string; name: string }[];
  est_rows: string;
  est_bytes: string;
  comment: string | null;
}

interface TypeRow {
  oid: number;
  schema: string;
  name: string;
  typtype: string;
  typelem: number;
  typlen: number;
  typbasetype: number;
  typrelid: number;
  relkind: string | null;
  rngsubtype: number | null;
  has_binary: boolean;
  from_extension: boolean;
  /** Domain only: the base type as format_type renders it, with the domain's typmod. */
  base_type: string | null;
  /** Domain only: its collation when it differs from its base type's. */
  domain_collation: string | null;
  domain_default: string | null;
  typnotnull: boolean;
}

interface AttributeRow {
  attrelid: number;
  name: string;
  type: string;
  atttypid: number;
  collation: string | null;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isSystemSchema(schema: string): boolean {
  return (
    schema === 'pg_catalog' ||
    schema === 'information_schema' ||
    schema.startsWith('pg_toast') ||
    schema.startsWith('pg_temp_')
  );
}

function isArray(t: TypeRow): boolean {
  // How format_type itself told arrays apart before typsubscript existed; still true for arrays.
  return t.typelem !== 0 && t.typlen === -1;
}

function display(q: QualifiedName): string {
  return qualifiedTable(q.schema, q.name);
}

class Introspection {
  private readonly warnings: string[] = [];
  private version = 0;

  constructor(
    private readonly client: ClientBase,
    private readonly select: (schema: string, table: string) => boolean,
  ) {}

  private async query<R extends object>(sql: string, params: unknown[] = []): Promise<R[]> {
    return (await this.client.query<R>(sql, params)).rows;
  }

  async run(): Promise<IntrospectedSchema> {
    const [{ v }] = await this.query<{ v: number }>(`SELECT current_setting('server_version_num')::int AS v`);
    this.version = v;
    if (v < 100000) throw new Error(`PostgreSQL ${v} is too old: dbferry needs 10 or newer`);

    const tableRows = (await this.tables()).filter((t) => this.select(t.schema, t.name));
    const oids = tableRows.map((t) => t.oid);
    const byOid = new Map(tableRows.map((t) => [t.oid, t]));
    const selected = new Set(tableRows.map((t) => `${t.schema}.${t.name}`));
    // A child whose parent is not migrated becomes a table of its own, with every column.
    const parentOf = (t: TableRow) =>
      t.parent_schema !== null && t.parent_name !== null && selected.has(`${t.parent_schema}.${t.parent_name}`)
        ? { schema: t.parent_schema, name: t.parent_name }
        : undefined;
    const inheritsAll = (t: TableRow) => t.inherits.length > 0 && t.inherits.every((p) => selected.has(`${p.schema}.${p.name}`));
    for (const t of tableRows) {
      if (t.relispartition && !parentOf(t)) {
        this.warnings.push(`${display(t)} is a partition of ${t.parent_schema}.${t.parent_name}, which is not migrated: it is created as a table of its own`);
      }
      if (t.inherits.length > 0 && !inheritsAll(t)) {
        this.warnings.push(`${display(t)} inherits from a table that is not migrated: it is created as a table of its own, with every column`);
      }
    }

    const columns = await this.columns(oids);
    const ownership = await this.query<{ table_oid: number; attnum: number; deptype: string; seq_oid: number }>(
      `SELECT d.refobjid AS table_oid, d.refobjsubid AS attnum, d.deptype, d.objid AS seq_oid
         FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.refobjid = ANY($1::oid[]) AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')`,
      [oids],
    );
    // nextval('…'::regclass) in a default records a dependency of the default on the sequence.
    const usedByDefaults = await this.query<{ seq_oid: number }>(
      `SELECT DISTINCT d.refobjid AS seq_oid
         FROM pg_attrdef ad
         JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass
         JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
        WHERE ad.adrelid = ANY($1::oid[])`,
      [oids],
    );

    const identitySeqByColumn = new Map<string, number>();
    const ownerBySeq = new Map<number, { tableOid: number; attnum: number; identity: boolean }>();
    for (const o of ownership) {
      ownerBySeq.set(o.seq_oid, { tableOid: o.table_oid, attnum: o.attnum, identity: o.deptype === 'i' });
      if (o.deptype === 'i') identitySeqByColumn.set(`${o.table_oid}/${o.attnum}`, o.seq_oid);
    }
    // Sequences of the migrated schemas that no table owns: a function may use them (nextval in
    // its body), and their state must travel like the others'.
    const freeStanding = await this.query<{ seq_oid: number }>(
      `SELECT c.oid AS seq_oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'S' AND n.nspname = ANY($1::text[])
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i', 'e'))`,
      [[...new Set(tableRows.map((t) => t.schema))]],
    );
    const seqOids = [...new Set([...ownership.map((o) => o.seq_oid), ...usedByDefaults.map((u) => u.seq_oid), ...freeStanding.map((f) => f.seq_oid)])];
    const sequences = await this.sequences(seqOids, ownerBySeq, byOid, columns);
    const seqByOid = new Map(sequences.map((s) => [s.oid, s.model]));

    const types = await this.typeInfo(columns.map((c) => c.atttypid));
    const typeModels = await this.typeModels(types, columns, byOid);

    const constraints = await this.constraints(oids, byOid);
    const indexes = await this.indexes(oids, byOid);

    const tables: TableModel[] = tableRows.map((t) => {
      const k = constraints.get(t.oid);
      return {
        schema: t.schema,
        name: t.name,
        columns: columns
          .filter((c) => c.attrelid === t.oid)
          .map((c) => ({ ...this.columnModel(c, types, identitySeqByColumn, seqByOid), ...(!c.local && inheritsAll(t) ? { inherited: true } : {}) })),
        ...(k?.primaryKey ? { primaryKey: k.primaryKey } : {}),
        uniques: k?.uniques ?? [],
        // An inheritance child gets its parents' checks from them.
        checks: (k?.checks ?? []).filter((c) => !inheritsAll(t) || !k?.inheritedChecks.has(c.name)),
        exclusions: k?.exclusions ?? [],
        foreignKeys: k?.foreignKeys ?? [],
        indexes: indexes.get(t.oid) ?? [],
        estimatedRows: t.est_rows,
        estimatedBytes: t.est_bytes,
        ...(t.relkind === 'p' ? { partitioned: true, partitionBy: t.partkey! } : {}),
        ...(parentOf(t) ? { partitionOf: { parent: parentOf(t)!, bound: t.bound! } } : {}),
        ...(inheritsAll(t) ? { inherits: t.inherits } : {}),
        ...(t.comment !== null ? { comment: t.comment } : {}),
      };
    });

    const seqModels = sequences.map((s) => s.model).sort((a, b) => cmp(a.schema, b.schema) || cmp(a.name, b.name));
    const schemas = [
      ...new Set([...tables.map((t) => t.schema), ...typeModels.map((t) => t.schema), ...seqModels.map((s) => s.schema)]),
    ]
      .filter((s) => !isSystemSchema(s))
      .sort(cmp);

    return {
      schemas,
      extensions: await this.extensions(),
      types: typeModels,
      sequences: seqModels,
      tables,
      warnings: this.warnings,
    };
  }

  private async tables(): Promise<TableRow[]> {
    const rows = await this.query<TableRow>(
      `SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind,
              c.relispartition,
              CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partkey,
              CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS bound,
              pn.nspname AS parent_schema, pc.relname AS parent_name,
              coalesce((SELECT json_agg(json_build_object('schema', hn.nspname, 'name', hc.relname) ORDER BY h.inhseqno)
                          FROM pg_inherits h JOIN pg_class hc ON hc.oid = h.inhparent JOIN pg_namespace hn ON hn.oid = hc.relnamespace
                         WHERE h.inhrelid = c.oid AND NOT c.relispartition), '[]') AS inherits,
              greatest(c.reltuples, 0)::bigint::text AS est_rows,
              pg_table_size(c.oid)::text AS est_bytes,
              obj_description(c.oid, 'pg_class') AS comment
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_inherits pi ON c.relispartition AND pi.inhrelid = c.oid
         LEFT JOIN pg_class pc ON pc.oid = pi.inhparent
         LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
        WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
          AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_dbferry')
          AND n.nspname !~ '^pg_(toast|temp_)'
          -- Tables an extension creates come back with CREATE EXTENSION on the target.
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                           WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`,
    );
    return rows.sort((a, b) => cmp(a.schema, b.schema) || cmp(a.name, b.name));
  }

  private async columns(oids: number[]) {
    const generated = this.version >= 120000 ? 'a.attgenerated::text' : `''`;
    return this.query<{
      attrelid: number;
      attnum: number;
      name: string;
      type: string;
      atttypid: number;
      notnull: boolean;
      identity: string;
      generated: string;
      expr: string | null;
      collation: string | null;
      local: boolean;
    }>(
      `SELECT a.attrelid, a.attnum, a.attname AS name, a.attislocal AS local, format_type(a.atttypid, a.atttypmod) AS type, a.atttypid,
              a.attnotnull AS notnull, a.attidentity::text AS identity, ${generated} AS generated,
              pg_get_expr(ad.adbin, ad.adrelid) AS expr,
              CASE WHEN a.attcollation <> t.typcollation
                   THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END AS collation
         FROM pg_attribute a
         JOIN pg_type t ON t.oid = a.atttypid
         LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
         LEFT JOIN pg_collation co ON co.oid = a.attcollation
         LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
        WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attrelid, a.attnum`,
      [oids],
    );
  }

  private columnModel(
    c: Awaited<ReturnType<Introspection['columns']>>[number],
    types: Map<number, TypeRow>,
    identitySeqByColumn: Map<string, number>,
    seqByOid: Map<number, SequenceModel>,
  ): ColumnModel {
    const m: ColumnModel = {
      name: c.name,
      type: c.type,
      notNull: c.notnull,
      binaryCopySafe: binaryCopySafe(c.atttypid, types),
    };
    if (c.collation !== null) m.collation = c.collation;
    if (c.generated === 's') {
      if (c.expr !== null) m.generated = c.expr;
    } else if (c.identity === 'a' || c.identity === 'd') {
      m.identity = c.identity === 'a' ? 'always' : 'by-default';
      const seqOid = identitySeqByColumn.get(`${c.attrelid}/${c.attnum}`);
      const seq = seqOid === undefined ? undefined : seqByOid.get(seqOid);
      if (seq) m.identitySequence = { schema: seq.schema, name: seq.name };
    } else if (c.expr !== null) {
      m.default = c.expr;
    }
    return m;
  }

  private async sequences(
    seqOids: number[],
    ownerBySeq: Map<number, { tableOid: number; attnum: number; identity: boolean }>,
    tables: Map<number, TableRow>,
    columns: Array<{ attrelid: number; attnum: number; name: string }>,
  ): Promise<Array<{ oid: number; model: SequenceModel }>> {
    if (seqOids.length === 0) return [];
    const rows = await this.query<{
      oid: number;
      schema: string;
      name: string;
      data_type: string;
      start: string;
      increment: string;
      max: string;
      min: string;
      cache: string;
      cycle: boolean;
    }>(
      `SELECT s.seqrelid AS oid, n.nspname AS schema, c.relname AS name, format_type(s.seqtypid, NULL) AS data_type,
              s.seqstart::text AS start, s.seqincrement::text AS increment, s.seqmax::text AS max,
              s.seqmin::text AS min, s.seqcache::text AS cache, s.seqcycle AS cycle
         FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE s.seqrelid = ANY($1::oid[])`,
      [seqOids],
    );
    // The state lives in each sequence relation; pg_sequences hides it (NULL) whenever
    // is_called is false, which would lose a setval(…, false) or ALTER SEQUENCE … RESTART.
    const state = new Map<number, { last_value: string; is_called: boolean }>();
    for (let i = 0; i < rows.length; i += 500) {
      const batch = rows.slice(i, i + 500);
      const sql = batch
        .map((r) => `SELECT ${r.oid}::oid AS oid, last_value::text AS last_value, is_called FROM ${qualifiedTable(r.schema, r.name)}`)
        .join('\nUNION ALL\n');
      for (const s of await this.query<{ oid: number; last_value: string; is_called: boolean }>(sql)) {
        state.set(s.oid, s);
      }
    }
    const columnName = new Map(columns.map((c) => [`${c.attrelid}/${c.attnum}`, c.name]));
    return rows.map((r) => {
      const st = state.get(r.oid);
      const owner = ownerBySeq.get(r.oid);
      const ownerTable = owner ? tables.get(owner.tableOid) : undefined;
      const ownerColumn = owner ? columnName.get(`${owner.tableOid}/${owner.attnum}`) : undefined;
      const model: SequenceModel = {
        schema: r.schema,
        name: r.name,
        dataType: r.data_type,
        start: r.start,
        increment: r.increment,
        min: r.min,
        max: r.max,
        cache: r.cache,
        cycle: r.cycle,
        // Null only for the untouched state, which CREATE SEQUENCE reproduces by itself.
        lastValue: st && (st.is_called || st.last_value !== r.start) ? st.last_value : null,
        isCalled: st?.is_called ?? false,
        // Only an owner that is migrated too: an identity sequence of a table left behind
        // becomes a free-standing sequence on the target.
        identity: !!(owner?.identity && ownerTable),
      };
      if (ownerTable && ownerColumn !== undefined) {
        model.ownedBy = { table: { schema: ownerTable.schema, name: ownerTable.name }, column: ownerColumn };
      }
      return { oid: r.oid, model };
    });
  }

  /** The pg_type rows of the given types and of everything they are built from. */
  private async typeInfo(roots: number[]): Promise<Map<number, TypeRow>> {
    const info = new Map<number, TypeRow>();
    let pending = [...new Set(roots)];
    while (pending.length > 0) {
      const rows = await this.query<TypeRow>(
        `SELECT t.oid, n.nspname AS schema, t.typname AS name, t.typtype::text AS typtype, t.typelem, t.typlen::int AS typlen,
                t.typbasetype, t.typrelid, c.relkind::text AS relkind, r.rngsubtype,
                t.typsend::oid <> 0 AND t.typreceive::oid <> 0 AS has_binary,
                EXISTS (SELECT 1 FROM pg_depend d
                         WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e') AS from_extension,
                CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END AS base_type,
                CASE WHEN t.typtype = 'd' AND t.typcollation <> bt.typcollation
                     THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END AS domain_collation,
                pg_get_expr(t.typdefaultbin, 0) AS domain_default,
                t.typnotnull
           FROM pg_type t
           JOIN pg_namespace n ON n.oid = t.typnamespace
           LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
           LEFT JOIN pg_class c ON c.oid = t.typrelid
           LEFT JOIN pg_range r ON r.rngtypid = t.oid
           LEFT JOIN pg_collation co ON co.oid = t.typcollation
           LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
          WHERE t.oid = ANY($1::oid[])`,
        [pending],
      );
      const next = new Set<number>();
      const want = (oid: number | null) => {
        if (oid && !info.has(oid)) next.add(oid);
      };
      const composites: number[] = [];
      for (const t of rows) info.set(t.oid, t);
      for (const t of rows) {
        if (t.typtype === 'd') want(t.typbasetype);
        if (isArray(t)) want(t.typelem);
        if (t.typtype === 'r') want(t.rngsubtype);
        if (t.typtype === 'c' && t.relkind === 'c' && !isSystemSchema(t.schema)) composites.push(t.typrelid);
      }
      if (composites.length > 0) {
        for (const a of await this.attributes(composites)) want(a.atttypid);
      }
      pending = [...next];
    }
    return info;
  }

  private attributeCache = new Map<number, AttributeRow[]>();

  private async attributes(relids: number[]): Promise<AttributeRow[]> {
    const missing = relids.filter((r) => !this.attributeCache.has(r));
    if (missing.length > 0) {
      const rows = await this.query<AttributeRow>(
        `SELECT a.attrelid, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.atttypid,
                CASE WHEN a.attcollation <> t.typcollation
                     THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END AS collation
           FROM pg_attribute a
           JOIN pg_type t ON t.oid = a.atttypid
           LEFT JOIN pg_collation co ON co.oid = a.attcollation
           LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
          WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attrelid, a.attnum`,
        [missing],
      );
      for (const r of missing) this.attributeCache.set(r, []);
      for (const a of rows) this.attributeCache.get(a.attrelid)!.push(a);
    }
    return relids.flatMap((r) => this.attributeCache.get(r) ?? []);
  }

  /** User-defined types the columns need, each after the types it is built from. */
  private async typeModels(
    info: Map<number, TypeRow>,
    columns: Array<{ atttypid: number; attrelid: number; name: string }>,
    tables: Map<number, TableRow>,
  ): Promise<TypeModel[]> {
    const order: TypeRow[] = [];
    const seen = new Set<number>();
    const visit = (oid: number, usedBy: string) => {
      if (seen.has(oid)) return;
      seen.add(oid);
      const t = info.get(oid);
      if (!t || isSystemSchema(t.schema) || t.from_extension) return;
      const name = display(t);
      if (isArray(t)) return visit(t.typelem, usedBy);
      switch (t.typtype) {
        case 'd':
          visit(t.typbasetype, name);
          order.push(t);
          return;
        case 'e':
          order.push(t);
          return;
        case 'c':
          if (t.relkind === 'c') {
            for (const a of this.attributeCache.get(t.typrelid) ?? []) visit(a.atttypid, name);
            order.push(t);
          } else {
            // A table's row type comes with the table; only the creation order is at stake.
            this.warnings.push(
              tables.has(t.typrelid)
                ? `${usedBy} uses the row type of table ${name}: it must be created before`
                : `${usedBy} uses the row type of table ${name}, which is not migrated`,
            );
          }
          return;
        case 'r':
        case 'm':
          if (t.rngsubtype) visit(t.rngsubtype, name);
          this.warnings.push(`${usedBy} uses the range type ${name}, which dbferry does not create: create it on the target first`);
          return;
        default:
          this.warnings.push(`${usedBy} uses the type ${name}, which dbferry cannot create: create it on the target first`);
      }
    };
    for (const c of columns) {
      const table = tables.get(c.attrelid);
      visit(c.atttypid, table ? `column ${quoteIdent(c.name)} of ${display(table)}` : quoteIdent(c.name));
    }

    const enumOids = order.filter((t) => t.typtype === 'e').map((t) => t.oid);
    const labels = new Map<number, string[]>();
    if (enumOids.length > 0) {
      for (const l of await this.query<{ enumtypid: number; label: string }>(
        `SELECT enumtypid, enumlabel AS label FROM pg_enum WHERE enumtypid = ANY($1::oid[]) ORDER BY enumtypid, enumsortorder`,
        [enumOids],
      )) {
        if (!labels.has(l.enumtypid)) labels.set(l.enumtypid, []);
        labels.get(l.enumtypid)!.push(l.label);
      }
    }
    const domainOids = order.filter((t) => t.typtype === 'd').map((t) => t.oid);
    const checks = new Map<number, Array<{ name: string; def: string; valid: boolean }>>();
    if (domainOids.length > 0) {
      for (const k of await this.query<{ contypid: number; name: string; def: string; valid: boolean }>(
        `SELECT contypid, conname AS name, pg_get_constraintdef(oid) AS def, convalidated AS valid
           FROM pg_constraint WHERE contypid = ANY($1::oid[]) AND contype = 'c'`,
        [domainOids],
      )) {
        if (!checks.has(k.contypid)) checks.set(k.contypid, []);
        checks.get(k.contypid)!.push(k);
      }
    }

    return order.map((t): TypeModel => {
      const name = display(t);
      if (t.typtype === 'e') {
        const body = (labels.get(t.oid) ?? []).map(quoteLiteral).join(', ');
        return { schema: t.schema, name: t.name, kind: 'enum', definition: `CREATE TYPE ${name} AS ENUM (${body})` };
      }
      if (t.typtype === 'c') {
        const attrs = (this.attributeCache.get(t.typrelid) ?? []).map(
          (a) => `${quoteIdent(a.name)} ${a.type}${a.collation !== null ? ` COLLATE ${a.collation}` : ''}`,
        );
        return { schema: t.schema, name: t.name, kind: 'composite', definition: `CREATE TYPE ${name} AS (${attrs.join(', ')})` };
      }
      let sql = `CREATE DOMAIN ${name} AS ${t.base_type}`;
      if (t.domain_collation !== null) sql += ` COLLATE ${t.domain_collation}`;
      if (t.domain_default !== null) sql += ` DEFAULT ${t.domain_default}`;
      if (t.typnotnull) sql += ' NOT NULL';
      const all = (checks.get(t.oid) ?? []).sort((a, b) => cmp(a.name, b.name));
      for (const k of all.filter((k) => k.valid)) sql += ` CONSTRAINT ${quoteIdent(k.name)} ${k.def}`;
      // CREATE DOMAIN cannot take NOT VALID, and existing data may violate such a check.
      for (const k of all.filter((k) => !k.valid)) {
        sql += `;\nALTER DOMAIN ${name} ADD CONSTRAINT ${quoteIdent(k.name)} ${k.def}`;
      }
      return { schema: t.schema, name: t.name, kind: 'domain', definition: sql };
    });
  }

  private async constraints(oids: number[], tables: Map<number, TableRow>) {
    const conparent = this.version >= 110000;
    const rows = await this.query<{
      conrelid: number;
      name: string;
      contype: string;
      def: string;
      confrelid: number;
      ref_schema: string | null;
      ref_name: string | null;
      columns: string[] | null;
      local: boolean;
      parent_index: { schema: string; name: string; table: number } | null;
    }>(
      `SELECT k.conrelid, k.conname AS name, k.contype::text AS contype, pg_get_constraintdef(k.oid) AS def, k.confrelid,
              k.conislocal AS local,
              (SELECT json_build_object('schema', pin.nspname, 'name', pic.relname, 'table', pix.indrelid::int8)
                 FROM pg_inherits ih JOIN pg_class pic ON pic.oid = ih.inhparent JOIN pg_namespace pin ON pin.oid = pic.relnamespace
                 JOIN pg_index pix ON pix.indexrelid = pic.oid
                WHERE k.contype IN ('p', 'u', 'x') AND ih.inhrelid = k.conindid) AS parent_index,
              CASE WHEN k.contype = 'p' THEN ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY AS u(n, o)
                     JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.o) END AS columns,
              rn.nspname AS ref_schema, rc.relname AS ref_name
         FROM pg_constraint k
         LEFT JOIN pg_class rc ON rc.oid = k.confrelid
         LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
        WHERE k.conrelid = ANY($1::oid[]) AND k.contype IN ('p', 'u', 'c', 'x', 'f')
          -- A foreign key to or from a partitioned table is repeated, under the same name, for
          -- each of its partitions; the copies come back with the original when it is migrated.
          ${conparent ? `AND NOT (k.contype = 'f' AND EXISTS (SELECT 1 FROM pg_constraint pk WHERE pk.oid = k.conparentid AND pk.conrelid = ANY($1::oid[])))` : ''}`,
      [oids],
    );
    const out = new Map<
      number,
      {
        primaryKey?: ConstraintModel;
        uniques: ConstraintModel[];
        checks: ConstraintModel[];
        exclusions: ConstraintModel[];
        foreignKeys: ConstraintModel[];
        /** Checks a child has from its parents (not its own). */
        inheritedChecks: Set<string>;
      }
    >();
    rows.sort((a, b) => cmp(a.name, b.name));
    for (const r of rows) {
      if (!out.has(r.conrelid)) out.set(r.conrelid, { uniques: [], checks: [], exclusions: [], foreignKeys: [], inheritedChecks: new Set() });
      const e = out.get(r.conrelid)!;
      const c: ConstraintModel = { name: r.name, definition: r.def };
      // A partition's key attached to its (migrated) parent's: built alone, then attached.
      if (r.parent_index && tables.has(r.parent_index.table)) c.parentIndex = { schema: r.parent_index.schema, name: r.parent_index.name };
      switch (r.contype) {
        case 'p':
          e.primaryKey = { ...c, columns: r.columns ?? [] };
          break;
        case 'u':
          e.uniques.push(c);
          break;
        case 'c':
          e.checks.push(c);
          if (!r.local) e.inheritedChecks.add(r.name);
          break;
        case 'x':
          e.exclusions.push(c);
          break;
        case 'f':
          if (tables.has(r.confrelid)) {
            e.foreignKeys.push({ ...c, references: { schema: r.ref_schema!, name: r.ref_name! } });
          } else {
            const t = tables.get(r.conrelid)!;
            const ref = r.ref_schema !== null && r.ref_name !== null ? qualifiedTable(r.ref_schema, r.ref_name) : String(r.confrelid);
            this.warnings.push(`foreign key ${quoteIdent(r.name)} of ${display(t)} references ${ref}, which is not migrated: skipped`);
          }
          break;
      }
    }
    return out;
  }

  private async indexes(oids: number[], tables: Map<number, TableRow>): Promise<Map<number, IndexModel[]>> {
    const rows = await this.query<{ indrelid: number; name: string; def: string; usable: boolean; parent_index: { schema: string; name: string; table: number } | null }>(
      `SELECT i.indrelid, ic.relname AS name, pg_get_indexdef(i.indexrelid) AS def, i.indisvalid AND i.indislive AS usable,
              (SELECT json_build_object('schema', pin.nspname, 'name', pic.relname, 'table', pix.indrelid::int8)
                 FROM pg_inherits ih JOIN pg_class pic ON pic.oid = ih.inhparent JOIN pg_namespace pin ON pin.oid = pic.relnamespace
                 JOIN pg_index pix ON pix.indexrelid = pic.oid
                WHERE ih.inhrelid = i.indexrelid) AS parent_index
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = ANY($1::oid[])
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                           WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))`,
      [oids],
    );
    const out = new Map<number, IndexModel[]>();
    rows.sort((a, b) => cmp(a.name, b.name));
    for (const r of rows) {
      if (!r.usable) {
        // Left over from a failed CREATE INDEX CONCURRENTLY: the source does not use it either.
        this.warnings.push(`index ${quoteIdent(r.name)} of ${display(tables.get(r.indrelid)!)} is invalid on the source: skipped`);
        continue;
      }
      if (!out.has(r.indrelid)) out.set(r.indrelid, []);
      const parentIndex = r.parent_index && tables.has(r.parent_index.table) ? { parentIndex: { schema: r.parent_index.schema, name: r.parent_index.name } } : {};
      out.get(r.indrelid)!.push({ name: r.name, definition: r.def, ...parentIndex });
    }
    return out;
  }

  /** Every installed extension but plpgsql, each after the extensions it requires. */
  private async extensions(): Promise<ExtensionModel[]> {
    const rows = await this.query<{ oid: number; name: string; schema: string; requires: string[] }>(
      `SELECT e.oid, e.extname AS name, n.nspname AS schema,
              ARRAY(SELECT d.refobjid::text FROM pg_depend d
                     WHERE d.classid = 'pg_extension'::regclass AND d.objid = e.oid
                       AND d.refclassid = 'pg_extension'::regclass) AS requires
         FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname <> 'plpgsql'`,
    );
    rows.sort((a, b) => cmp(a.name, b.name));
    const byOid = new Map(rows.map((r) => [r.oid, r]));
    const out: ExtensionModel[] = [];
    const seen = new Set<number>();
    const visit = (r: (typeof rows)[number]) => {
      if (seen.has(r.oid)) return;
      seen.add(r.oid);
      for (const dep of r.requires) {
        const d = byOid.get(Number(dep));
        if (d) visit(d);
      }
      out.push({ name: r.name, schema: r.schema });
    };
    rows.forEach(visit);
    return out;
  }
}

/**
 * Binary COPY embeds element type OIDs in arrays and attribute type OIDs in composites; a
 * user or extension type has another OID on the target, so such columns must travel as text.
 * So must types without binary send/receive functions.
 */
function binaryCopySafe(oid: number, types: Map<number, TypeRow>): boolean {
  const base = (o: number): TypeRow | undefined => {
    let t = types.get(o);
    for (let i = 0; t && t.typtype === 'd' && i < 100; i++) t = types.get(t.typbasetype);
    return t;
  };
  const t = base(oid);
  if (!t) return false;
  if (t.oid === RECORD_OID || t.typtype === 'p' || t.typtype === 'c' || !t.has_binary) return false;
  if (isArray(t)) {
    if (t.typelem >= FIRST_NORMAL_OBJECT_ID) return false;
    const e = base(t.typelem);
    if (!e || e.typtype === 'c' || e.typtype === 'p' || !e.has_binary) return false;
  }
  return true;
}
