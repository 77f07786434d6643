/**
 * MySQL/MariaDB spatial columns on a PostgreSQL target. Pure: the MySQL reader, the canonical
 * checksum and the target's create-tables share these rules.
 *
 * A spatial column converts (mysql/types.ts, value kind `geometry`) to the portable form, bytea
 * holding MySQL's own bytes (the SRID, 4 bytes little-endian, then the WKB). Where the target has
 * PostGIS (or dbferry may create it), create-tables makes the column a PostGIS `geometry` instead
 * and records that type in the model: every reader of the model (the load, the checksums) tells
 * the two forms apart by the column's type, `bytea` or not.
 */
import { quoteIdent } from '../../plan/sql-names';

/** PostGIS keeps SRIDs up to this; it silently turns a larger one into one of its reserved range. */
export const POSTGIS_MAX_SRID = 999_999;

const SUBTYPES: Record<string, string> = {
  point: 'Point',
  linestring: 'LineString',
  polygon: 'Polygon',
  multipoint: 'MultiPoint',
  multilinestring: 'MultiLineString',
  multipolygon: 'MultiPolygon',
  geometrycollection: 'GeometryCollection',
  geomcollection: 'GeometryCollection',
};

/**
 * The PostGIS type of a MySQL spatial column (its ColumnModel.sourceType: `point`, or MySQL 8's
 * `point SRID 4326`) with the extension in `schema`. It keeps the column's kind of geometry and
 * a SRID only where the source declares one: a MariaDB column may hold values of different
 * SRIDs, which a SRID in the type would refuse. Undefined when PostGIS cannot hold the declared
 * SRID (the column stays bytea).
 */
export function postgisType(sourceType: string, schema: string): string | undefined {
  const kind = /^\s*([a-z]+)/i.exec(sourceType)?.[1]?.toLowerCase() ?? 'geometry';
  const srid = /\bSRID\s+(\d+)/i.exec(sourceType)?.[1];
  if (srid !== undefined && Number(srid) > POSTGIS_MAX_SRID) return undefined;
  const sub = SUBTYPES[kind];
  const modifiers = srid !== undefined ? [sub ?? 'Geometry', String(Number(srid))] : sub ? [sub] : [];
  return `${quoteIdent(schema)}.${quoteIdent('geometry')}${modifiers.length > 0 ? `(${modifiers.join(',')})` : ''}`;
}

/** The quoted schema of a type postgisType rendered, whose functions (ST_SRID…) live there too. */
export function postgisSchemaOf(type: string): string {
  return /^("(?:[^"]|"")*")\./.exec(type)?.[1] ?? quoteIdent('public');
}

/** EWKB's flag, in the geometry type, for a SRID after it. */
const EWKB_SRID_FLAG = 0x20000000;

/**
 * A MySQL geometry value (the SRID, 4 bytes little-endian, then the WKB) as PostGIS's EWKB: the
 * WKB's byte order, its type with the SRID flag set, the SRID, then the rest of the WKB. Only
 * the outermost geometry carries a SRID (as in EWKB): the nested ones are plain WKB already.
 * Undefined for bytes that cannot be a geometry.
 */
export function mysqlGeometryToEwkb(v: Buffer): Buffer | undefined {
  if (v.length < 9 || v[4]! > 1) return undefined;
  const little = v[4] === 1;
  const srid = v.readUInt32LE(0);
  const type = ((little ? v.readUInt32LE(5) : v.readUInt32BE(5)) | EWKB_SRID_FLAG) >>> 0;
  const out = Buffer.alloc(v.length);
  out[0] = v[4]!;
  if (little) {
    out.writeUInt32LE(type, 1);
    out.writeUInt32LE(srid, 5);
  } else {
    out.writeUInt32BE(type, 1);
    out.writeUInt32BE(srid, 5);
  }
  v.copy(out, 9, 9);
  return out;
}
