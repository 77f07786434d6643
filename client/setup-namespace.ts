import type { Client } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../workflows/search-attributes';

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
