export { migrationWorkflow } from './migration';
export { checkWorkflow } from './check';
