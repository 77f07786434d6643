import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { CleanupResult, MigrationRef } from '../plan/migration-types';
import type { Plan } from '../plan/plan-schema';

const { cleanupSource } = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 3, initialInterval: '1 second' },
});

/** `dbferry cleanup`: drops what a finished, failed or forgotten migration left on the source. */
export async function cleanupWorkflow(input: { plan: Plan; migration: MigrationRef }): Promise<CleanupResult> {
  return cleanupSource(input);
}
