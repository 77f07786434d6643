import type { Client } from 'pg';
import type { EndpointInfo } from '../../plan/migration-types';
import type { PgEndpoint } from './connection';

/** The server's version and the endpoint without its side prefix. */
export async function endpointInfo(c: Client, ep: PgEndpoint): Promise<EndpointInfo> {
  const { rows } = await c.query<{ v: string }>("SELECT current_setting('server_version') AS v");
  return { description: ep.description.replace(/^(source|target) /, ''), version: (rows[0]?.v ?? '').split(' ')[0]! };
}
