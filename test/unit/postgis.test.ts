import { postgisFindings, type PostgisOnTarget } from '../../activities/target/postgis';
import type { ColumnModel, TableModel } from '../../plan/schema-model';

const column = (name: string, sourceType: string): ColumnModel => ({ name, type: 'bytea', notNull: false, binaryCopySafe: false, conversion: 'geometry', sourceType });
const table = (name: string, columns: ColumnModel[]): TableModel => ({
  schema: 'shop', name, columns, uniques: [], checks: [], exclusions: [], foreignKeys: [], indexes: [], estimatedRows: '0', estimatedBytes: '0',
});
const tables = [table('places', [column('pt', 'point'), column('area', 'polygon SRID 4326'), { ...column('blob', 'blob'), conversion: 'bytes' }])];
const target = { description: 'target db', database: 'gis', version: '15.20', exists: true };
const state = (over: Partial<PostgisOnTarget>): PostgisOnTarget => ({ superuser: false, trusted: false, createsInDatabase: true, user: 'app', ...over });

/** Preflight says, before create-tables, which form MySQL's spatial columns take on the target, and the remedy for bytea. */
describe('preflight findings for spatial columns', () => {
  test('installed: the columns become PostGIS geometry', () => {
    const f = postgisFindings(tables, state({ installed: { schema: 'public', version: '3.3.2' }, available: '3.3.2' }), target);
    expect(f).toEqual([{ severity: 'info', code: 'spatial-postgis', message: expect.stringContaining('shop.places.pt (point), shop.places.area (polygon SRID 4326) become PostGIS geometry columns (PostGIS 3.3.2 is installed in database gis') }]);
  });

  test('available to a superuser: create-tables creates the extension', () => {
    const f = postgisFindings(tables, state({ available: '3.3.2', superuser: true }), target);
    expect(f[0]).toMatchObject({ code: 'spatial-postgis', message: expect.stringContaining('create-tables runs CREATE EXTENSION IF NOT EXISTS postgis in database gis') });
  });

  test('available but the user is no superuser: bytea unless the server allows it, and who can fix that', () => {
    const f = postgisFindings(tables, state({ available: '3.3.2' }), target);
    expect(f[0]).toMatchObject({ code: 'spatial-as-bytea', message: expect.stringMatching(/app is no superuser.*shop\.places\.pt \(point\).*bytea in MySQL's own form.*have a superuser run CREATE EXTENSION postgis in database gis/) });
  });

  test('no PostGIS on the server: bytea, naming the columns and the package to install', () => {
    const f = postgisFindings(tables, state({}), target);
    expect(f).toEqual([
      {
        severity: 'info',
        code: 'spatial-as-bytea',
        message: expect.stringMatching(/shop\.places\.pt \(point\), shop\.places\.area \(polygon SRID 4326\) are loaded as bytea .*install it on the target \(Debian and Ubuntu: package postgresql-15-postgis-3\)/),
      },
    ]);
  });

  test('a declared SRID PostGIS cannot hold: that column stays bytea whatever the target has', () => {
    const f = postgisFindings([table('t', [column('g', 'geometry SRID 4000000'), column('p', 'point')])], state({ installed: { schema: 'public', version: '3.3.2' } }), target);
    expect(f.map((x) => [x.code, x.message.includes('shop.t.g') ? 'g' : 'p'])).toEqual([['spatial-as-bytea', 'g'], ['spatial-postgis', 'p']]);
  });

  test('no spatial columns: nothing to say', () => {
    expect(postgisFindings([table('t', [{ ...column('b', 'blob'), conversion: 'bytes' }])], state({}), target)).toEqual([]);
  });
});
