import type { Client } from '@temporalio/client';
import { migrationWorkflowId } from '../../workflows/search-attributes';

export interface WorkflowHistory {
  workflowId: string;
  events: NonNullable<Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>['events']>;
}

/** The history of a migration's workflow and of every child workflow it started (the load's). */
export async function migrationHistories(client: Client, name: string): Promise<WorkflowHistory[]> {
  const out: WorkflowHistory[] = [];
  const queue = [migrationWorkflowId(name)];
  while (queue.length > 0) {
    const workflowId = queue.shift()!;
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const events = history.events ?? [];
    out.push({ workflowId, events });
    for (const e of events) {
      const child = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution?.workflowId;
      if (child) queue.push(child);
    }
  }
  return out;
}

/** History as JSON with every payload's bytes decoded, so a secret inside one would be visible. */
export function readableHistory(history: unknown): string {
  return JSON.stringify(history, (_k, v: unknown) => {
    if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
    return v;
  }).replace(/"data":"([A-Za-z0-9+/=]+)"/g, (_m, b64: string) => JSON.stringify(Buffer.from(b64, 'base64').toString('utf8')));
}
