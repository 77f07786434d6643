// ESLint enforces the imports that only point down (DESIGN.md, "Layout") and the promise traps
// (STYLE.md, guideline 12). `npm run lint`; test/unit/lint-rules.test.ts proves the rules bite.
//
// no-restricted-imports sees the import string, not the resolved file, so a relative import is
// banned by the exact `../` prefix that leaves the layer from the importing file's depth:
// `../local` from client/cli.ts is the top-level local/, from client/demo/demo.ts it is client/local/.
const { builtinModules } = require('node:module');
const { defineConfig, globalIgnores } = require('eslint/config');
const tseslint = require('typescript-eslint');

const LINTED = ['workflows', 'activities', 'worker', 'client', 'plan', 'local', 'scripts', 'test', 'bench'];
const MAX_DEPTH = 6; // folders nest at most this deep below a layer (activities/postgres/cdc/… is 3)

const DRIVERS = ['/pg', '/pg-copy-streams', '/mysql2', '/@aws-sdk/*'];
// Anchored (leading `/`), so that `./events` or `../plan/util` are not mistaken for builtins.
const NODE_BUILTINS = ['/node:*', ...builtinModules.filter((m) => !m.includes('/')).map((m) => `/${m}`)];

/** The import of a top-level folder (and anything under it) from a file `depth` folders below the top. */
const layer = (depth, folder) => {
  const prefix = '../'.repeat(depth) + folder;
  return [prefix, `${prefix}/**`];
};

/**
 * The never-imports of each layer. `rules(depth)` lists the no-restricted-imports patterns for a
 * file `depth` folders below the top; `allowTypeImports` where only values are banned.
 */
const LAYERS = {
  workflows: (d) => [
    { group: DRIVERS, message: 'Workflows never touch a database driver or the AWS SDK: that is activity code.' },
    { group: NODE_BUILTINS, message: 'Workflows run in the deterministic sandbox: no Node APIs.' },
    {
      group: ['/@temporalio/worker', '/@temporalio/client', '/@temporalio/activity'],
      message: 'Workflows import only @temporalio/workflow and @temporalio/common.',
    },
    {
      group: layer(d, 'activities'),
      allowTypeImports: true,
      message: 'Workflows import only types from activities (`import type`, then proxyActivities).',
    },
    {
      group: [...layer(d, 'client'), ...layer(d, 'worker'), ...layer(d, 'local')],
      message: 'Workflows never import the CLI, the worker or the local harness.',
    },
  ],
  client: (d) => [
    { group: DRIVERS, message: 'The CLI talks to Temporal only, never to a database or AWS.' },
    {
      group: [...layer(d, 'activities'), ...layer(d, 'worker'), ...layer(d, 'local')],
      message: 'The CLI never imports activity, worker or local-harness code statically (a command may import() its process entry).',
    },
  ],
  plan: (d) => [
    { group: DRIVERS, message: 'plan/ is pure: no drivers.' },
    { group: NODE_BUILTINS, message: 'plan/ is pure: no Node APIs (no I/O).' },
    { group: ['/@temporalio/*'], allowTypeImports: true, message: 'plan/ imports only types from Temporal.' },
    {
      group: ['activities', 'workflows', 'client', 'worker', 'local'].flatMap((f) => layer(d, f)),
      message: 'plan/ is the bottom layer: it imports nothing above it.',
    },
  ],
  activities: (d) => [
    { group: layer(d, 'workflows'), allowTypeImports: true, message: 'Activities import only types from workflows.' },
    {
      group: [...layer(d, 'client'), ...layer(d, 'worker'), ...layer(d, 'local')],
      message: 'Activities never import the CLI, the worker or the local harness.',
    },
  ],
  worker: (d) => [{ group: layer(d, 'client'), message: 'The worker never imports the CLI.' }],
};

const layerRules = Object.entries(LAYERS).flatMap(([folder, rules]) =>
  Array.from({ length: MAX_DEPTH }, (_, i) => ({
    name: `dbferry/layers/${folder}/depth-${i + 1}`,
    files: [`${folder}/${'*/'.repeat(i)}*.ts`],
    rules: { 'no-restricted-imports': ['error', { patterns: rules(i + 1) }] },
  })),
);

module.exports = defineConfig([
  globalIgnores(['dist/', 'node_modules/', 'test-artifacts/', '.dbferry-demo/', '.tmp/']),
  {
    name: 'dbferry/typescript',
    files: LINTED.map((folder) => `${folder}/**/*.ts`),
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: __dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      // checksVoidReturn catches an async Update validator (the SDK ignores its promise).
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
    },
  },
  ...layerRules,
]);
