export { migrationWorkflow } from './migration';
export { checkWorkflow } from './check';
export { loadBatchWorkflow } from './full-load';
export { cleanupWorkflow } from './cleanup';
