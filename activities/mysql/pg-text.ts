/**
 * A MySQL/MariaDB value → the text PostgreSQL reads for the converted column (its text input,
 * unescaped). One set of rules for every path a value takes to the target: the full load
 * (reader.ts, which escapes it for COPY) and binlog CDC (binlog-values.ts), so a zero date,
 * a boolean or a NUL is treated the same whichever way the row comes.
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import type { ColumnModel } from '../../plan/schema-model';
import { withoutDuplicateKeys } from '../cross-engine/json-digest';
import { mysqlGeometryToEwkb, POSTGIS_MAX_SRID } from '../cross-engine/spatial';

/** A date with a zero year, month or day: MySQL keeps it, PostgreSQL has no such date. */
const ZERO_DATE = /^0000-|^\d{4}-00-|^\d{4}-\d{2}-00/;

/**
 * One column's value, in the form mysql2 gives it with connection.ts's options (exact strings
 * for numbers and dates, Buffers for binary strings, BIT and geometry; FLOAT and DOUBLE as the
 * server's text of the double), → PostgreSQL's text of it, or null for SQL NULL.
 * `changed()` counts a value the migration had to change (conversionWords says how).
 */
export function pgTextOf(c: ColumnModel, table: string, changed: () => void): (v: unknown) => string | null {
  const refuse = (value: string, why: string) =>
    ApplicationFailure.create({
      type: FailureType.DataError,
      nonRetryable: true,
      message: `${table}.${c.name} holds ${value}: ${why}`,
      details: [{ table, hint: 'change the value on the source (or exclude the table), then run dbferry retry' }],
    });
  const text = (v: unknown) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));
  switch (c.conversion) {
    case 'boolean':
      return (v) => {
        if (v === null) return null;
        const s = String(v);
        if (s === '0') return 'f';
        if (s === '1') return 't';
        throw refuse(s, `tinyint(1) converts to boolean, which holds only 0 and 1 (declare the column wider on the source, e.g. tinyint(2))`);
      };
    case 'bytes':
      return (v) => (v === null ? null : '\\x' + (v as Buffer).toString('hex'));
    case 'geometry':
      // Without PostGIS on the target the column is bytea: MySQL's own form, byte for byte.
      if (c.type === 'bytea') return (v) => (v === null ? null : '\\x' + (v as Buffer).toString('hex'));
      return (v) => {
        if (v === null) return null;
        const ewkb = mysqlGeometryToEwkb(v as Buffer);
        if (!ewkb) throw refuse(`${(v as Buffer).length} bytes that are not a geometry`, 'MySQL stores a geometry as a 4-byte SRID followed by WKB');
        const srid = (v as Buffer).readUInt32LE(0);
        if (srid > POSTGIS_MAX_SRID) {
          throw refuse(`a geometry with SRID ${srid}`, `PostGIS keeps SRIDs up to ${POSTGIS_MAX_SRID} and would change it (ST_SetSRID it on the source to one PostGIS knows)`);
        }
        // PostGIS reads hex EWKB as a geometry's text input.
        return ewkb.toString('hex');
      };
    case 'bit': {
      const n = Number(/\((\d+)\)/.exec(c.type)?.[1] ?? 1);
      return (v) => {
        if (v === null) return null;
        let bits = '';
        for (const byte of v as Buffer) bits += byte.toString(2).padStart(8, '0');
        return bits.slice(-n).padStart(n, '0');
      };
    }
    case 'date':
    case 'datetime':
    case 'timestamp':
      return (v) => {
        if (v === null) return null;
        const s = String(v);
        if (ZERO_DATE.test(s)) {
          changed();
          return null;
        }
        // A timestamp is read in UTC (the session's zone): said so, whatever the target session's zone.
        return c.conversion === 'timestamp' ? `${s}+00` : s;
      };
    case 'json':
      return (v) => {
        if (v === null) return null;
        const s = text(v);
        let fixed: string | undefined;
        try {
          fixed = withoutDuplicateKeys(s);
        } catch (err) {
          throw refuse('a document jsonb cannot read', (err as Error).message);
        }
        if (fixed === undefined) return s;
        changed();
        return fixed;
      };
    case 'text':
    case 'enum':
    case 'set':
    case undefined:
      return (v) => {
        if (v === null) return null;
        const s = text(v);
        if (s.includes('\0')) throw refuse('a NUL character', 'PostgreSQL text cannot hold it (store such values in a binary column)');
        return s;
      };
    default:
      // Numbers, time (an interval's text), year: the server's text as it is.
      return (v) => (v === null ? null : text(v));
  }
}

/** What pgTextOf changed in a column, in words for the ledger and the report (never silent). */
export function conversionWords(c: ColumnModel, n: number): string {
  return c.conversion === 'json'
    ? `${n} JSON document${n > 1 ? 's' : ''} in ${c.name} with duplicate keys written with the first value of each key (as MySQL reads them; PostgreSQL would keep the last)`
    : `${n} zero or invalid date${n > 1 ? 's' : ''} in ${c.name} written as NULL`;
}
