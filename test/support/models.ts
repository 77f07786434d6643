import { quoteIdent } from '../../plan/sql-names';
import type { SchemaModel, TableModel } from '../../plan/schema-model';

/** A table of the schema model, as introspection would give it: typed columns and a primary key (none when `key` is empty). */
export function tableModel(schema: string, name: string, columns: [string, string][], key: string[], extra: Partial<TableModel> = {}): TableModel {
  return {
    schema,
    name,
    columns: columns.map(([n, type]) => ({ name: n, type, notNull: key.includes(n), binaryCopySafe: true })),
    ...(key.length ? { primaryKey: { name: `${name}_pkey`, definition: `PRIMARY KEY (${key.map(quoteIdent).join(', ')})`, columns: key } } : {}),
    uniques: [],
    checks: [],
    exclusions: [],
    foreignKeys: [],
    indexes: [],
    estimatedRows: '0',
    estimatedBytes: '0',
    ...extra,
  };
}

/** A schema model of these tables (their schemas, nothing else). */
export function schemaModel(tables: TableModel[]): SchemaModel {
  return { schemas: [...new Set(tables.map((t) => t.schema))], extensions: [], types: [], sequences: [], tables };
}
