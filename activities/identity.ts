import { hostname } from 'node:os';

/**
 * This worker process as Temporal and the load ledger name it (the SDK's default form,
 * `pid@host`), so a ledger row tells which worker loaded a chunk.
 */
export function workerIdentity(): string {
  return `${process.pid}@${hostname()}`;
}
