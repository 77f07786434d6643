/** @type {import('jest').Config} */
const common = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': ['@swc/jest'],
    // The binlog reader ships as an ES module, which jest's CommonJS runtime cannot require
    // (Node itself can: the worker loads it as it is).
    '/node_modules/@vlasky/zongji/.+\\.js$': ['@swc/jest', { module: { type: 'commonjs' } }],
  },
  transformIgnorePatterns: ['/node_modules/(?!@vlasky/zongji/)'],
};

module.exports = {
  testTimeout: 120000,
  maxWorkers: 2,
  projects: [
    // Pure logic: no servers.
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    // Real servers (PostgreSQL, Temporal) start once for the whole project; tests make their own databases.
    {
      ...common,
      displayName: 'servers',
      testMatch: ['<rootDir>/test/{integration,e2e,ui,faults}/**/*.test.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
    },
  ],
};
