import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { CleanupResult, MigrationRef } from '../plan/migration-types';
import type { Plan } from '../plan/plan-schema';

const { cleanupSource } = proxyActivities<Activities>({
  // Deleting a DMS task waits for AWS to let its endpoints go.
  startToCloseTimeout: '30 minutes',
  retry: { maximumAttempts: 3, initialInterval: '1 second' },
});

/**
 * `dbferry cleanup`: drops what a finished, failed or forgotten migration left on the source
 * (and, with the aws runner, every AWS resource it made).
 */
export async function cleanupWorkflow(input: { plan: Plan; migration: MigrationRef }): Promise<CleanupResult> {
  return cleanupSource({ ...input, removeAll: true });
}
