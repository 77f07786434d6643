import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

/**
 * This worker process as Temporal and the load ledger name it (the SDK's default form,
 * `pid@host`), so a ledger row tells which worker loaded a chunk.
 */
export function workerIdentity(): string {
  return `${process.pid}@${hostname()}`;
}

let ownQueue: string | undefined;
const processTag = randomUUID().slice(0, 8);

/**
 * The task queue only this worker process polls, beside the shared one: activities that must
 * run beside one another (a MySQL read point's loaders, beside the snapshots its holder keeps
 * in this process) are scheduled on it.
 */
export function ownTaskQueueName(sharedQueue: string): string {
  // A restarted container keeps its pid and host name: the tag tells this process from the last.
  return `${sharedQueue}@${workerIdentity()}/${processTag}`;
}

export function setOwnTaskQueue(queue: string | undefined): void {
  ownQueue = queue;
}

/** Undefined when this process polls no queue of its own (a worker created in a test or the demo). */
export function ownTaskQueue(): string | undefined {
  return ownQueue;
}
