/** dbferry's metric names in one place: the activities and the workflow emit them, the dashboard (deploy/grafana) reads them. */
export const METRICS = {
  rowsLoaded: 'dbferry_rows_loaded_total',
  bytesLoaded: 'dbferry_bytes_loaded_total',
  loadTasksDone: 'dbferry_load_tasks_done_total',
  cdcChangesApplied: 'dbferry_cdc_changes_applied_total',
  cdcLagSeconds: 'dbferry_cdc_lag_seconds',
  sourceRetainedBytes: 'dbferry_source_retained_bytes',
  tablesValidated: 'dbferry_tables_validated_total',
  operatorPauses: 'dbferry_operator_pauses_total',
} as const;

