/** Where a CLI or a worker finds Temporal: the frontend, the namespace and dbferry's task queue. */
export interface TemporalOptions {
  address: string;
  namespace: string;
  taskQueue: string;
}

/** The values when neither a flag nor TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, DBFERRY_TASK_QUEUE says otherwise. */
export const TEMPORAL_DEFAULTS: Readonly<TemporalOptions> = {
  address: 'localhost:7233',
  namespace: 'default',
  taskQueue: 'dbferry',
};
