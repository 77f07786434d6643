import { Client, Connection, WorkflowNotFoundError, type WorkflowExecutionDescription } from '@temporalio/client';
import { CliError, Exit } from './exit-codes';

export interface TemporalOptions {
  address: string;
  namespace: string;
  taskQueue: string;
}

export function temporalOptionsFromEnv(): TemporalOptions {
  return {
    address: process.env.TEMPORAL_ADDRESS || 'localhost:7233',
    namespace: process.env.TEMPORAL_NAMESPACE || 'default',
    taskQueue: process.env.DBFERRY_TASK_QUEUE || 'dbferry',
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
