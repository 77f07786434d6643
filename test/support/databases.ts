import { Client } from 'pg';
import { quoteIdent } from '../../activities/postgres/ddl';

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
