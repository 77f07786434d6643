/**
 * Reads MySQL/MariaDB's information_schema into the neutral schema model, converting each type
 * (types.ts). A MySQL database becomes the PostgreSQL schema of the same name; names keep their
 * case. What does not convert is a finding (prefix, fulltext and spatial indexes; views,
 * routines, triggers and events; checks in MySQL's own dialect), never dropped in silence.
 */
import type { Connection } from 'mysql2/promise';
import type { Finding } from '../../plan/migration-types';
import type { ColumnModel, ConstraintModel, IndexModel, SchemaModel, SequenceModel, SqlObject, TableModel } from '../../plan/schema-model';
import { fitIdentifier, qualifiedTable, quoteIdent, quoteLiteral } from '../../plan/sql-names';
import { convertColumn, UnsupportedType, type MysqlColumn } from './types';

export const SYSTEM_DATABASES = ['mysql', 'information_schema', 'performance_schema', 'sys'];

export interface MysqlSchema {
  model: SchemaModel;
  findings: Finding[];
}

type Row = Record<string, string | null>;

async function rows(c: Connection, sql: string, params: unknown[] = []): Promise<Row[]> {
  const [r] = await c.query({ sql, values: params });
  return r as Row[];
}

const fit = fitIdentifier;

/**
 * Check constraints written in MySQL's dialect carry over when they use only what both dialects
 * share (names, numbers, strings, comparisons, AND/OR/NOT, IN, BETWEEN, IS [NOT] NULL,
 * arithmetic): backquoted names become double-quoted. Anything else is a finding.
 */
function convertCheck(clause: string): string | undefined {
  let out = '';
  const re = /\s+|`((?:[^`]|``)*)`|'((?:[^'\\]|''|\\.)*)'|(\d+(?:\.\d+)?)|(<>|!=|<=|>=|=|<|>|\(|\)|,|\+|-|\*|\/)|([A-Za-z_][A-Za-z_0-9]*)/gy;
  const words = new Set(['and', 'or', 'not', 'in', 'between', 'is', 'null', 'true', 'false', 'like']);
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < clause.length) {
    re.lastIndex = pos;
    m = re.exec(clause);
    if (!m) return undefined;
    pos = re.lastIndex;
    if (m[1] !== undefined) out += quoteIdent(m[1].replace(/``/g, '`'));
    else if (m[2] !== undefined) {
      if (/\\/.test(m[2])) return undefined;
      out += quoteLiteral(m[2].replace(/''/g, "'"));
    } else if (m[5] !== undefined) {
      if (!words.has(m[5].toLowerCase())) return undefined;
      out += m[5].toUpperCase();
    } else out += m[0] === '!=' ? '<>' : m[0];
  }
  return out;
}

export async function introspectMysql(c: Connection, select: (schema: string, table: string) => boolean): Promise<MysqlSchema> {
  const findings: Finding[] = [];
  const tableRows = (
    await rows(
      c,
      `SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, ENGINE AS engine, CAST(TABLE_ROWS AS CHAR) AS est_rows,
              CAST(DATA_LENGTH AS CHAR) AS est_bytes, CAST(AUTO_INCREMENT AS CHAR) AS auto_increment, TABLE_COMMENT AS comment
         FROM information_schema.TABLES
        WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN (?)
        ORDER BY TABLE_SCHEMA, TABLE_NAME`,
      [SYSTEM_DATABASES],
    )
  ).filter((r) => select(r.s!, r.t!));
  const key = (s: string, t: string) => `${s}.${t}`;
  const wanted = new Set(tableRows.map((r) => key(r.s!, r.t!)));
  const schemas = [...new Set(tableRows.map((r) => r.s!))];
  if (schemas.length === 0) return { model: { schemas: [], extensions: [], types: [], sequences: [], tables: [] }, findings };

  const [columns, stats, fks, checks, others, srids] = await Promise.all([
    rows(
      c,
      `SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, COLUMN_NAME AS name, DATA_TYPE AS data_type, COLUMN_TYPE AS column_type,
              IS_NULLABLE AS nullable, COLUMN_DEFAULT AS def, EXTRA AS extra, CAST(CHARACTER_MAXIMUM_LENGTH AS CHAR) AS char_len,
              CAST(NUMERIC_PRECISION AS CHAR) AS num_prec, CAST(NUMERIC_SCALE AS CHAR) AS num_scale,
              CAST(DATETIME_PRECISION AS CHAR) AS dt_prec, CHARACTER_SET_NAME AS charset, GENERATION_EXPRESSION AS gen, COLUMN_COMMENT AS comment
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN (?) ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION`,
      [schemas],
    ),
    rows(
      c,
      `SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, INDEX_NAME AS name, CAST(NON_UNIQUE AS CHAR) AS non_unique, COLUMN_NAME AS col,
              CAST(SUB_PART AS CHAR) AS sub_part, INDEX_TYPE AS type
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA IN (?) ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX`,
      [schemas],
    ),
    rows(
      c,
      `SELECT k.TABLE_SCHEMA AS s, k.TABLE_NAME AS t, k.CONSTRAINT_NAME AS name, k.COLUMN_NAME AS col,
              k.REFERENCED_TABLE_SCHEMA AS ref_s, k.REFERENCED_TABLE_NAME AS ref_t, k.REFERENCED_COLUMN_NAME AS ref_col,
              r.UPDATE_RULE AS on_update, r.DELETE_RULE AS on_delete
         FROM information_schema.KEY_COLUMN_USAGE k
         JOIN information_schema.REFERENTIAL_CONSTRAINTS r
           ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME
        WHERE k.TABLE_SCHEMA IN (?) AND k.REFERENCED_TABLE_NAME IS NOT NULL
        ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION`,
      [schemas],
    ),
    // MariaDB 10.2+ and MySQL 8.0.16+; older servers have no table (and no enforced checks).
    rows(
      c,
      `SELECT tc.TABLE_SCHEMA AS s, tc.TABLE_NAME AS t, cc.CONSTRAINT_NAME AS name, cc.CHECK_CLAUSE AS clause
         FROM information_schema.CHECK_CONSTRAINTS cc
         JOIN information_schema.TABLE_CONSTRAINTS tc
           ON tc.CONSTRAINT_SCHEMA = cc.CONSTRAINT_SCHEMA AND tc.CONSTRAINT_NAME = cc.CONSTRAINT_NAME AND tc.CONSTRAINT_TYPE = 'CHECK'
        WHERE cc.CONSTRAINT_SCHEMA IN (?)`,
      [schemas],
    ).catch(() => [] as Row[]),
    rows(
      c,
      `SELECT 'view' AS kind, TABLE_SCHEMA AS s, TABLE_NAME AS name FROM information_schema.VIEWS WHERE TABLE_SCHEMA IN (?)
       UNION ALL SELECT LOWER(ROUTINE_TYPE), ROUTINE_SCHEMA, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN (?)
       UNION ALL SELECT 'trigger', TRIGGER_SCHEMA, TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN (?)
       UNION ALL SELECT 'event', EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA IN (?)`,
      [schemas, schemas, schemas, schemas],
    ),
    // MySQL 8's declared SRID of a spatial column; MariaDB has no such column (and no declared SRIDs).
    rows(
      c,
      'SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, COLUMN_NAME AS name, CAST(SRS_ID AS CHAR) AS srs_id FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN (?) AND SRS_ID IS NOT NULL',
      [schemas],
    ).catch(() => [] as Row[]),
  ]);
  const sridOf = new Map(srids.map((r) => [`${key(r.s!, r.t!)}.${r.name}`, r.srs_id]));
  // A check MySQL's JSON alias adds (MariaDB: JSON is LONGTEXT CHECK (json_valid(col))).
  const jsonColumns = new Set<string>();
  for (const ck of checks) {
    const m = /^json_valid\(`((?:[^`]|``)*)`\)$/i.exec((ck.clause ?? '').trim());
    if (m) jsonColumns.add(`${key(ck.s!, ck.t!)}.${m[1]!.replace(/``/g, '`')}`);
  }

  const taken = new Map<string, Set<string>>();
  const namesOf = (schema: string) => {
    let s = taken.get(schema);
    if (!s) taken.set(schema, (s = new Set(tableRows.filter((r) => r.s === schema).map((r) => r.t!))));
    return s;
  };
  const sequences: SequenceModel[] = [];
  const tables: TableModel[] = [];
  const post: SqlObject[] = [];
  for (const tr of tableRows) {
    const schema = tr.s!;
    const name = tr.t!;
    const k = key(schema, name);
    const qualified = qualifiedTable(schema, name);
    const t: TableModel = {
      schema,
      name,
      columns: [],
      uniques: [],
      checks: [],
      exclusions: [],
      foreignKeys: [],
      indexes: [],
      estimatedRows: tr.est_rows ?? '0',
      estimatedBytes: tr.est_bytes ?? '0',
      ...(tr.comment ? { comment: tr.comment } : {}),
    };
    if (tr.engine && !/^(InnoDB|Aria|XtraDB)$/i.test(tr.engine)) {
      findings.push({
        severity: 'warning',
        code: 'non-transactional-table',
        table: k,
        message: `${k} uses the ${tr.engine} storage engine: it is not transactional, so its rows are read as they are at each moment, not at the load's read point`,
      });
    }
    for (const col of columns.filter((x) => x.s === schema && x.t === name)) {
      const mc: MysqlColumn = {
        name: col.name!,
        dataType: col.data_type!,
        columnType: col.column_type!,
        nullable: col.nullable === 'YES',
        default: col.def,
        extra: col.extra ?? '',
        charMaxLength: col.char_len,
        numericPrecision: col.num_prec,
        numericScale: col.num_scale,
        datetimePrecision: col.dt_prec,
        charset: col.charset,
        generationExpression: col.gen || null,
        isJson: jsonColumns.has(`${k}.${col.name}`),
        srsId: sridOf.get(`${k}.${col.name}`) ?? null,
      };
      let conv;
      try {
        conv = convertColumn(mc);
      } catch (err) {
        if (!(err instanceof UnsupportedType)) throw err;
        findings.push({ severity: 'blocking', code: 'unsupported-type', table: k, message: `${k}: ${err.message}` });
        continue;
      }
      const cm: ColumnModel = {
        name: mc.name,
        type: conv.type,
        notNull: !mc.nullable,
        binaryCopySafe: false,
        conversion: conv.kind,
        sourceType: conv.sourceType,
        ...(conv.default !== undefined ? { default: conv.default } : {}),
      };
      if (conv.autoIncrement) {
        const seqName = fit(`${name}_${mc.name}_seq`, namesOf(schema));
        cm.identity = 'by-default';
        cm.identitySequence = { schema, name: seqName };
        const next = tr.auto_increment ? BigInt(tr.auto_increment) : 1n;
        sequences.push({
          schema,
          name: seqName,
          dataType: conv.type,
          start: '1',
          increment: '1',
          min: '1',
          max: conv.type === 'numeric(20,0)' ? '9223372036854775807' : conv.type === 'integer' ? '2147483647' : conv.type === 'smallint' ? '32767' : '9223372036854775807',
          cache: '1',
          cycle: false,
          lastValue: next > 1n ? (next - 1n).toString() : null,
          isCalled: next > 1n,
          ownedBy: { table: { schema, name }, column: mc.name },
          identity: true,
        });
      }
      t.columns.push(cm);
      for (const body of conv.checks) {
        t.checks.push({ name: fit(`${name}_${mc.name}_check`, namesOf(schema)), definition: `CHECK (${body})` });
      }
      for (const note of conv.notes) findings.push({ severity: 'warning', code: 'not-converted', table: k, message: `${k}: ${note}` });
      if (conv.onUpdateCurrentTimestamp) {
        post.push(...onUpdateTrigger(t, mc.name));
        findings.push({
          severity: 'info',
          code: 'on-update-trigger',
          table: k,
          message: `${k}.${mc.name} ON UPDATE CURRENT_TIMESTAMP becomes a trigger on the target`,
        });
      }
    }

    // Keys and indexes, by name.
    const byIndex = new Map<string, Row[]>();
    for (const s of stats.filter((x) => x.s === schema && x.t === name)) byIndex.set(s.name!, [...(byIndex.get(s.name!) ?? []), s]);
    for (const [indexName, parts] of byIndex) {
      const cols = parts.map((p) => p.col!);
      const list = cols.map(quoteIdent).join(', ');
      const first = parts[0]!;
      if (parts.some((p) => p.sub_part !== null) || /FULLTEXT|SPATIAL/i.test(first.type ?? '') || parts.some((p) => p.col === null)) {
        const what = /FULLTEXT/i.test(first.type ?? '') ? 'a FULLTEXT index' : /SPATIAL/i.test(first.type ?? '') ? 'a SPATIAL index' : parts.some((p) => p.col === null) ? 'an index on an expression' : 'a prefix index';
        findings.push({
          severity: 'warning',
          code: 'index-not-converted',
          table: k,
          message: `${k}: ${what} ${indexName} (${parts.map((p) => p.col + (p.sub_part ? `(${p.sub_part})` : '')).join(', ')}) is not created on the target (create an equivalent by hand if queries need it)`,
        });
        continue;
      }
      if (indexName === 'PRIMARY') {
        t.primaryKey = { name: fit(`${name}_pkey`, namesOf(schema)), definition: `PRIMARY KEY (${list})`, columns: cols };
      } else if (first.non_unique === '0') {
        t.uniques.push({ name: fit(indexName, namesOf(schema)), definition: `UNIQUE (${list})` });
      } else {
        const n = fit(indexName, namesOf(schema));
        t.indexes.push({ name: n, definition: `CREATE INDEX ${quoteIdent(n)} ON ${qualified} USING btree (${list})` } satisfies IndexModel);
      }
    }

    // Foreign keys (only to migrated tables: one to a table left out cannot be created).
    const byFk = new Map<string, Row[]>();
    for (const f of fks.filter((x) => x.s === schema && x.t === name)) byFk.set(f.name!, [...(byFk.get(f.name!) ?? []), f]);
    for (const [fkName, parts] of byFk) {
      const ref = { schema: parts[0]!.ref_s!, name: parts[0]!.ref_t! };
      if (!wanted.has(key(ref.schema, ref.name))) {
        findings.push({ severity: 'warning', code: 'foreign-key-to-excluded-table', table: k, message: `${k}: foreign key ${fkName} references ${key(ref.schema, ref.name)}, which is not migrated: not created` });
        continue;
      }
      const action = (rule: string | null, word: string) => (rule && rule !== 'RESTRICT' && rule !== 'NO ACTION' ? ` ON ${word} ${rule}` : '');
      t.foreignKeys.push({
        name: fkName,
        definition: `FOREIGN KEY (${parts.map((p) => quoteIdent(p.col!)).join(', ')}) REFERENCES ${qualifiedTable(ref.schema, ref.name)}(${parts.map((p) => quoteIdent(p.ref_col!)).join(', ')})${action(parts[0]!.on_update, 'UPDATE')}${action(parts[0]!.on_delete, 'DELETE')}`,
        references: ref,
      } satisfies ConstraintModel);
    }

    for (const ck of checks.filter((x) => x.s === schema && x.t === name)) {
      if (/^json_valid\(`(?:[^`]|``)*`\)$/i.test((ck.clause ?? '').trim())) continue;
      const body = convertCheck(ck.clause ?? '');
      if (body === undefined) {
        findings.push({ severity: 'warning', code: 'check-not-converted', table: k, message: `${k}: check constraint ${ck.name} (${ck.clause}) is in MySQL's dialect and is not created on the target` });
      } else {
        t.checks.push({ name: fit(ck.name!, new Set(t.checks.map((x) => x.name))), definition: `CHECK (${body})` });
      }
    }
    if (!t.primaryKey) {
      findings.push({ severity: 'warning', code: 'no-primary-key', table: k, message: `${k} has no primary key: it is loaded whole (never in key ranges)` });
    }
    tables.push(t);
  }
  alignForeignKeyTypes(tables, fks, findings);
  for (const o of others) {
    findings.push({ severity: 'warning', code: `${o.kind}-not-converted`, message: `${o.kind} ${key(o.s!, o.name!)} is not converted (MySQL's dialect): recreate it on the target by hand` });
  }
  const model: SchemaModel = { schemas, extensions: [], types: [], sequences, tables, ...(post.length ? { objects: { pre: [], post, refresh: [] } } : {}) };
  return { model, findings };
}

/**
 * A foreign key needs the same type on both ends. An `AUTO_INCREMENT bigint unsigned` key
 * becomes bigint (an identity), other `bigint unsigned` columns numeric(20,0): a column that
 * references such a key takes the key's type (and its range), as the values it may hold are
 * the key's.
 */
function alignForeignKeyTypes(tables: TableModel[], fks: Row[], findings: Finding[]): void {
  const byKey = new Map(tables.map((t) => [`${t.schema}.${t.name}`, t]));
  for (const f of fks) {
    const child = byKey.get(`${f.s}.${f.t}`);
    const parent = byKey.get(`${f.ref_s}.${f.ref_t}`);
    const col = child?.columns.find((c) => c.name === f.col);
    const ref = parent?.columns.find((c) => c.name === f.ref_col);
    if (!child || !col || !ref || col.type === ref.type || col.conversion !== 'integer' || ref.conversion !== 'integer') continue;
    const was = col.type;
    col.type = ref.type;
    const check = `${quoteIdent(col.name)} BETWEEN `;
    for (const ck of child.checks) {
      if (ck.definition.startsWith(`CHECK (${check}`) && ref.type === 'bigint') ck.definition = `CHECK (${quoteIdent(col.name)} BETWEEN 0 AND 9223372036854775807)`;
    }
    findings.push({
      severity: 'info',
      code: 'foreign-key-type',
      table: `${f.s}.${f.t}`,
      message: `${f.s}.${f.t}.${col.name} becomes ${ref.type} (not ${was}) like the key ${f.ref_s}.${f.ref_t}.${ref.name} it references`,
    });
  }
}

/**
 * ON UPDATE CURRENT_TIMESTAMP as a PostgreSQL trigger: an update that changes the row but not
 * the column sets it to the current time, as MySQL does; not when a foreign key's action changed
 * the row (pg_trigger_depth 2: inside the action's trigger), which MySQL does not either. Created
 * after the load (CDC applies with triggers off: the source's own value arrives).
 */
function onUpdateTrigger(t: { schema: string; name: string }, column: string): SqlObject[] {
  const base = `${t.name}_${column}_on_update`;
  const fn = qualifiedTable(t.schema, base.slice(0, 63));
  const trigger = quoteIdent(base.slice(0, 63));
  const col = quoteIdent(column);
  const table = qualifiedTable(t.schema, t.name);
  return [
    {
      kind: 'FUNCTION',
      name: `function ${fn}()`,
      sql: `CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN IF NEW.${col} IS NOT DISTINCT FROM OLD.${col} AND NEW IS DISTINCT FROM OLD AND pg_trigger_depth() < 2 THEN NEW.${col} := CURRENT_TIMESTAMP; END IF; RETURN NEW; END $f$`,
    },
    { kind: 'TRIGGER', name: `trigger ${trigger} on ${table}`, sql: `CREATE TRIGGER ${trigger} BEFORE UPDATE ON ${table} FOR EACH ROW EXECUTE FUNCTION ${fn}()` },
  ];
}
