export * from './schema-model';
export * from './secret-ref';
export * from './table-selection';
export * from './plan-schema';
export * from './parse-plan';
export * from './supported';
export * from './migration-types';
export * from './failure-types';
