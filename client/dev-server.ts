import { spawn } from 'node:child_process';
import type { Client } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../plan/search-attributes';
import { devServerArgs, temporalBinary } from './local/temporal-dev-server';

/** `dbferry dev-server`: the Temporal CLI's dev server in the foreground; Ctrl-C stops it. */
export async function runDevServerForeground(o: { port: number; uiPort: number; dbFile?: string }): Promise<number> {
  const args = devServerArgs({ ...o, logLevel: 'warn' });
  console.error(`Temporal dev server on 127.0.0.1:${o.port}, Web UI http://127.0.0.1:${o.uiPort} (search attributes: ${SEARCH_ATTRIBUTES.map((s) => s.name).join(', ')})`);
  const child = spawn(temporalBinary(), args, { stdio: 'inherit' });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 0)));
}

/** INDEXED_VALUE_TYPE_KEYWORD in temporal.api.enums.v1.IndexedValueType. */
const KEYWORD = 2;

/** Registers dbferry's search attributes on a namespace; those already there are left alone. */
export async function setupNamespace(client: Client, namespace: string): Promise<string> {
  const existing = await client.connection.operatorService.listSearchAttributes({ namespace });
  const have = new Set(Object.keys(existing.customAttributes ?? {}));
  const missing = SEARCH_ATTRIBUTES.map((s) => s.name).filter((n) => !have.has(n));
  if (missing.length === 0) return `namespace ${namespace}: dbferry's search attributes are already registered`;
  await client.connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(missing.map((n) => [n, KEYWORD])),
  });
  return `namespace ${namespace}: registered ${missing.join(', ')} (Keyword)`;
}
