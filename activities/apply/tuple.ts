/**
 * Row values as the change stream carries them to the applier: the source's text bytes, SQL
 * NULL, or "unchanged" (PostgreSQL's unchanged TOAST: the target keeps the value it has). They go
 * into COPY on the target unchanged, so no value passes through a JavaScript number or Date.
 */

/** A column the source marks as unchanged (PostgreSQL: unchanged TOAST): the target keeps its value. */
export const UNCHANGED = Symbol('unchanged-toast');
export type Unchanged = typeof UNCHANGED;

/** One column value: text bytes, SQL NULL, or unchanged TOAST. */
export type ColumnValue = Buffer | null | Unchanged;
export type Tuple = ColumnValue[];

