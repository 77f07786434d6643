import { Client } from 'pg';
import { quoteIdent, quoteLiteral } from '../../plan/sql-names';

export type Side = 'source' | 'target';

/** The superuser URL of a test server, for one database. */
export function serverUrl(side: Side, database = 'postgres'): string {
  const url = new URL(requiredEnv(side === 'source' ? 'DBFERRY_TEST_SOURCE_URL' : 'DBFERRY_TEST_TARGET_URL'));
  url.pathname = '/' + encodeURIComponent(database);
  return url.toString();
}

export function requiredEnv(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests through jest (test/support/global-setup.ts)`);
  return v;
}

/** A database name no other test uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 7)}`.toLowerCase();
}

export async function withClient<T>(url: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function createDatabase(side: Side, name: string): Promise<string> {
  await withClient(serverUrl(side), (c) => c.query(`CREATE DATABASE ${quoteIdent(name)}`));
  return serverUrl(side, name);
}

export async function dropDatabase(side: Side, name: string): Promise<void> {
  await withClient(serverUrl(side), (c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`));
}

/**
 * A target that refuses rows mid-load: the moment a table is created on it (by dbferry or
 * pg_restore), an event trigger adds a check constraint `planted` that most rows violate.
 * Undo with `DROP EVENT TRIGGER plant` (and drop the constraint where it stays).
 */
export async function plantCheckOnCreate(url: string, objectIdentity: string, check: string): Promise<void> {
  const body = `ALTER TABLE ${objectIdentity} ADD CONSTRAINT planted CHECK (${check})`;
  await withClient(url, (c) =>
    c.query(`
      CREATE FUNCTION plant_check() RETURNS event_trigger LANGUAGE plpgsql AS $plant$
      BEGIN
        IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands()
                    WHERE command_tag = 'CREATE TABLE' AND object_identity = ${quoteLiteralSql(objectIdentity)}) THEN
          EXECUTE ${quoteLiteralSql(body)};
        END IF;
      END $plant$;
      CREATE EVENT TRIGGER plant ON ddl_command_end EXECUTE FUNCTION plant_check();`),
  );
}

function quoteLiteralSql(v: string): string {
  return `'${v.replace(/'/g, "''")}'`;
}
