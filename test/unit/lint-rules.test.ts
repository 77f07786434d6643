// The lint rules bite: eslint.config.js, as `npm run lint` runs it, reports each never-import of
// DESIGN.md ("Layout") and the promise traps of STYLE.md (12). Each snippet is linted as if it
// were a file of the folder its virtual path names, with its real types: the type checker gets a
// program holding the snippet (compiler options of tsconfig.json) instead of the project service,
// which would load the whole project and leave timers running after the test. The config is passed
// in, not looked up: ESLint loads a config file with import(), which Jest's VM refuses.
import { resolve } from 'node:path';
import { ESLint, type Linter } from 'eslint';
import * as ts from 'typescript';

const repoRoot = resolve(__dirname, '../..');
const FIXTURE = '__lint_fixture__.ts';

const projectConfig = require(resolve(repoRoot, 'eslint.config.js')) as Linter.Config[];
const { options } = ts.getParsedCommandLineOfConfigFile(resolve(repoRoot, 'tsconfig.json'), {}, {
  ...ts.sys,
  onUnRecoverableConfigFileDiagnostic: (d) => {
    throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  },
})!;

/** A compiler host that serves the snippet under its virtual path and parses every real file once. */
const snippet = { path: '', text: '' };
const host = ts.createCompilerHost(options, true);
const parsed = new Map<string, ts.SourceFile | undefined>();
const { getSourceFile, fileExists, readFile } = host;
host.getSourceFile = (fileName, languageVersion) => {
  if (fileName === snippet.path) return ts.createSourceFile(fileName, snippet.text, languageVersion, true);
  if (!parsed.has(fileName)) parsed.set(fileName, getSourceFile.call(host, fileName, languageVersion));
  return parsed.get(fileName);
};
host.fileExists = (fileName) => fileName === snippet.path || fileExists.call(host, fileName);
host.readFile = (fileName) => (fileName === snippet.path ? snippet.text : readFile.call(host, fileName));
let program: ts.Program | undefined;

/** The rule id and line of each problem in `code` linted as `folder/__lint_fixture__.ts`. */
async function lint(folder: string, code: string): Promise<{ rule: string | null; line: number }[]> {
  Object.assign(snippet, { path: resolve(repoRoot, folder, FIXTURE), text: code });
  program = ts.createProgram([snippet.path], options, host, program);
  const eslint = new ESLint({
    cwd: repoRoot,
    overrideConfigFile: true,
    overrideConfig: [...projectConfig, { languageOptions: { parserOptions: { projectService: false, programs: [program] } } }],
  });
  const [result] = await eslint.lintText(code, { filePath: snippet.path });
  const fatal = result.messages.find((m) => m.fatal);
  if (fatal) throw new Error(`${folder}/${FIXTURE} was not linted: ${fatal.message}`);
  return result.messages.map((m) => ({ rule: m.ruleId, line: m.line }));
}

const restricted = (line: number) => ({ rule: 'no-restricted-imports', line });

describe('eslint.config.js', () => {
  test('workflows import no driver and no Node API', async () => {
    const problems = await lint(
      'workflows',
      [
        "import { Client } from 'pg';",
        "import { readFileSync } from 'node:fs';",
        "import { setTimeout } from 'timers';",
        "import { Connection } from '@temporalio/client';",
        'export const used = [Client, readFileSync, setTimeout, Connection];',
      ].join('\n'),
    );
    expect(problems).toEqual([restricted(1), restricted(2), restricted(3), restricted(4)]);
  });

  test('workflows import only types from activities', async () => {
    const problems = await lint(
      'workflows',
      [
        "import type { Activities } from '../activities';",
        "import { type createActivities } from '../activities';",
        "import { createActivities as create } from '../activities';",
        'export type Both = [Activities, typeof createActivities, typeof create];',
      ].join('\n'),
    );
    expect(problems).toEqual([restricted(3)]);
  });

  test('the rule follows the depth of the importing file', async () => {
    const problems = await lint(
      'workflows/nested',
      ["import { createActivities } from '../../activities';", 'export const used = createActivities;'].join('\n'),
    );
    expect(problems).toEqual([restricted(1)]);
  });

  test('the CLI imports no driver and no worker code, except by import() of its process entry', async () => {
    const problems = await lint(
      'client',
      [
        "import { Pool } from 'pg';",
        "import { createWorker } from '../worker/worker';",
        'export const used = [Pool, createWorker];',
        "export const runWorker = async () => (await import('../worker/worker')).runWorker;",
      ].join('\n'),
    );
    expect(problems).toEqual([restricted(1), restricted(2)]);
  });

  test('plan/ does no I/O', async () => {
    const problems = await lint(
      'plan',
      ["import { readFileSync } from 'node:fs';", "import { Client } from 'pg';", 'export const used = [readFileSync, Client];'].join('\n'),
    );
    expect(problems).toEqual([restricted(1), restricted(2)]);
  });

  test('an async Update validator is reported (the SDK would ignore its promise)', async () => {
    const problems = await lint(
      'workflows',
      [
        "import { defineUpdate, setHandler } from '@temporalio/workflow';",
        "const decideUpdate = defineUpdate<void, [string]>('decide');",
        'export function wire(): void {',
        '  setHandler(decideUpdate, () => undefined, {',
        "    validator: async (decision: string) => { if (!decision) throw new Error('empty'); },",
        '  });',
        '}',
      ].join('\n'),
    );
    expect(problems).toEqual([{ rule: '@typescript-eslint/no-misused-promises', line: 5 }]);
  });

  test('a floating promise is reported; a void one is not', async () => {
    const problems = await lint(
      'test',
      [
        'async function work(): Promise<void> {}',
        'export function caller(): void {',
        '  work();',
        '  void work();',
        '}',
      ].join('\n'),
    );
    expect(problems).toEqual([{ rule: '@typescript-eslint/no-floating-promises', line: 3 }]);
  });
});
