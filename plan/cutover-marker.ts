import type { MigrationRef } from './migration-types';

/** The content of the marker cutover writes into the source's change stream: it names the run. */
export function cutoverMarker(m: MigrationRef): string {
  return `cutover ${m.name} ${m.runId}`;
}
