/**
 * The workflows with one deliberately incompatible change, for the negative check in
 * test/unit/replay.test.ts: migrationWorkflow now waits a second before its first step, and the
 * change is not guarded by patched(). A migration recorded before it must fail to replay.
 */
import { sleep } from '@temporalio/workflow';
import { migrationWorkflow as current, type MigrationInput } from '../../workflows/migration';

export { loadBatchWorkflow } from '../../workflows/full-load';

export async function migrationWorkflow(input: MigrationInput): ReturnType<typeof current> {
  await sleep('1 second');
  return current(input);
}
