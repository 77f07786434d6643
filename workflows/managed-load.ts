import type { ActivityInput, FullLoadResult } from '../plan/migration-types';
import { long } from './activity-calls';

/**
 * The full-load step of a runner that hands the rows to a managed service (AWS DMS): its
 * resources made or adopted first, then its load followed until every table is in. Each
 * activity finds what an earlier attempt made, so a retry never makes anything twice.
 */
export async function runManagedLoad(input: ActivityInput): Promise<FullLoadResult> {
  await long('prepareManagedLoad', 'full load: make or adopt the DMS replication instance, endpoints (tested), task and event subscription', input);
  return long('managedLoad', 'full load: AWS DMS loads every table; dbferry follows it', input);
}
