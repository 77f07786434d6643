import type { Client } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../workflows/search-attributes';

/** INDEXED_VALUE_TYPE_KEYWORD in temporal.api.enums.v1.IndexedValueType. */
const KEYWORD = 2;

/** Registers dbferry's search attributes on a namespace; those already there are left alone. */
export async function setupNamespace(client: Client, namespace: string): Promise<NamespaceSetup> {
  const existing = await client.connection.operatorService.listSearchAttributes({ namespace });
  const have = new Set(Object.keys(existing.customAttributes ?? {}));
  const names = SEARCH_ATTRIBUTES.map((s) => s.name);
  const missing = names.filter((n) => !have.has(n));
  const alreadyRegistered = names.filter((n) => have.has(n));
  if (missing.length === 0) return { namespace, registered: [], alreadyRegistered, message: `namespace ${namespace}: dbferry's search attributes are already registered` };
  await client.connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(missing.map((n) => [n, KEYWORD])),
  });
  return { namespace, registered: missing, alreadyRegistered, message: `namespace ${namespace}: registered ${missing.join(', ')} (Keyword)` };
}

export interface NamespaceSetup {
  namespace: string;
  registered: string[];
  alreadyRegistered: string[];
  message: string;
}
