import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import { ownTaskQueueName, setOwnTaskQueue, workerIdentity } from '../activities/identity';
import { activityTelemetry } from './activity-telemetry';
import { asyncContextAdvice } from './async-context';
import { connectionOptions, type TemporalOptions } from '../plan/temporal-options';

export interface WorkerSettings extends TemporalOptions {
  /** Activities run at once on this worker (each load lane holds two connections). */
  maxConcurrentActivities?: number;
}

/**
 * The prebuilt workflow bundle (scripts/build.sh writes it next to the compiled code) starts
 * a worker in a second; without it the worker bundles the workflows itself.
 */
export function workflowSource(): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  const bundle = join(__dirname, '..', 'workflow-bundle.js');
  if (existsSync(bundle)) return { workflowBundle: { codePath: bundle } };
  return { workflowsPath: require.resolve('../workflows') };
}

export async function createWorker(s: WorkerSettings, connection: NativeConnection, opts: { ownQueue?: string } = {}): Promise<Worker> {
  return Worker.create({
    connection,
    namespace: s.namespace,
    taskQueue: opts.ownQueue ?? s.taskQueue,
    identity: workerIdentity(),
    // This process's own queue carries activities only (loaders beside a read point held here).
    ...(opts.ownQueue ? {} : workflowSource()),
    activities: createActivities(),
    // Every activity's log lines and metrics carry its migration and step.
    interceptors: { activity: [activityTelemetry] },
    maxConcurrentActivityTaskExecutions: s.maxConcurrentActivities ?? 20,
    // The SDK would send heartbeats only every 80% of the heartbeat timeout: one slow send on a
    // busy machine and a live loader looks lost. Activities heartbeat on their own timers (every
    // 5 s; the CDC applier every second, so `status` says "caught up" only while it is true).
    maxHeartbeatThrottleInterval: '1s',
    // Running activities get this long to finish on SIGTERM; after it they are cancelled and retried elsewhere.
    shutdownGraceTime: '10s',
    shutdownForceTime: '1m',
  });
}

/**
 * Runs a worker until SIGINT/SIGTERM (handled by the SDK's runtime: graceful shutdown): one
 * polling the shared task queue, and one polling this process's own queue, where the workflow
 * schedules activities that must run beside one another (activities/identity.ts).
 */
export async function runWorker(s: WorkerSettings): Promise<void> {
  const connection = await NativeConnection.connect(connectionOptions(s));
  try {
    const ownQueue = ownTaskQueueName(s.taskQueue);
    const [shared, own] = await Promise.all([createWorker(s, connection), createWorker(s, connection, { ownQueue })]);
    setOwnTaskQueue(ownQueue);
    Runtime.instance().logger.info(`dbferry worker: polling task queue ${s.taskQueue} (and its own, ${ownQueue}) on ${s.address} (namespace ${s.namespace}${s.tls ? ', TLS' : ''}${s.apiKey ? ', API key' : ''})`, {
      taskQueue: s.taskQueue,
      namespace: s.namespace,
    });
    const advice = asyncContextAdvice(process.version, process.execArgv, process.env.NODE_OPTIONS);
    if (advice) Runtime.instance().logger.warn(advice);
    // Both stop together: whichever ends first (a signal, a fatal error) shuts the other down.
    const stopOther = (w: Worker) => () => {
      if (w.getState() === 'RUNNING') w.shutdown();
    };
    // Both are waited for before the connection closes; the first failure is then reported.
    const ended = await Promise.allSettled([shared.run().finally(stopOther(own)), own.run().finally(stopOther(shared))]);
    const failed = ended.find((e): e is PromiseRejectedResult => e.status === 'rejected');
    if (failed) throw failed.reason;
  } finally {
    setOwnTaskQueue(undefined);
    await connection.close();
  }
}
