import { Client, Connection, WorkflowNotFoundError, type WorkflowExecutionDescription } from '@temporalio/client';
import { TEMPORAL_DEFAULTS, type TemporalOptions } from '../plan/temporal-options';
import { CliError, Exit } from './exit-codes';

export type { TemporalOptions };

export function temporalOptionsFromEnv(): TemporalOptions {
  return {
    address: process.env.TEMPORAL_ADDRESS || TEMPORAL_DEFAULTS.address,
    namespace: process.env.TEMPORAL_NAMESPACE || TEMPORAL_DEFAULTS.namespace,
    taskQueue: process.env.DBFERRY_TASK_QUEUE || TEMPORAL_DEFAULTS.taskQueue,
  };
}

/** A client connected to Temporal, or exit 6 naming the address. */
export async function connectClient(o: TemporalOptions): Promise<{ client: Client; connection: Connection }> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: o.address, connectTimeout: 5_000 });
    await connection.workflowService.getSystemInfo({});
  } catch (err) {
    throw new CliError(Exit.TemporalUnreachable, `cannot reach Temporal at ${o.address}: ${firstLine(err)} (set TEMPORAL_ADDRESS or --address)`);
  }
  return { client: new Client({ connection, namespace: o.namespace }), connection };
}

export async function withClient<T>(o: TemporalOptions, fn: (client: Client) => Promise<T>): Promise<T> {
  const { client, connection } = await connectClient(o);
  try {
    return await fn(client);
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** describe(), or undefined when no workflow has that id. */
export async function describeOrUndefined(client: Client, workflowId: string): Promise<WorkflowExecutionDescription | undefined> {
  try {
    return await client.workflow.getHandle(workflowId).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

export function firstLine(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return m.split('\n')[0]!;
}
