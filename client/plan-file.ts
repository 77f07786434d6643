import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { formatPlanIssues, MappingsUnreadable, parsePlanYaml, unsupportedFeatures, type Plan } from '../plan';
import { CliError, Exit } from './exit-codes';

/**
 * Reads and validates a plan file (exit 2 with every problem named). `tables.mappings: file:`
 * is read here, relative to the plan file; secret references are left for the workers.
 */
export function loadPlanFile(path: string): Plan {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(Exit.BadInput, `${path}: cannot read the plan file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const res = parsePlanYaml(text, {
    readMappings: (p) => {
      const full = isAbsolute(p) ? p : resolve(dirname(path), p);
      let content: string;
      try {
        content = readFileSync(full, 'utf8');
      } catch (err) {
        throw new MappingsUnreadable(`the file cannot be read (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
      }
      try {
        return JSON.parse(content) as unknown;
      } catch (err) {
        // JSON.parse quotes the text around the error: say where, not what.
        const at = /position (\d+)/.exec((err as Error).message)?.[1];
        throw new MappingsUnreadable(`not valid JSON${at ? ` (at character ${at})` : ''}: expected an AWS DMS table-mapping document`);
      }
    },
  });
  if (!res.ok) throw new CliError(Exit.BadInput, formatPlanIssues(res.issues, path));
  const unsupported = unsupportedFeatures(res.plan);
  if (unsupported.length > 0) throw new CliError(Exit.BadInput, formatPlanIssues(unsupported, path));
  checkInputSize(res.plan, path);
  return res.plan;
}

/**
 * Temporal refuses a payload over 2 MB, and only when the workflow starts (after a minute of
 * retries, as "Failed to start Workflow"): a plan that large (a huge table mapping) is refused
 * here, at once, with the limit.
 */
export const MAX_PLAN_BYTES = 1024 * 1024;

function checkInputSize(plan: Plan, path: string): void {
  const bytes = Buffer.byteLength(JSON.stringify({ plan }));
  if (bytes > MAX_PLAN_BYTES) {
    throw new CliError(
      Exit.BadInput,
      `${path}: the plan is ${(bytes / 1024 / 1024).toFixed(1)} MB as workflow input; dbferry accepts at most ${MAX_PLAN_BYTES / 1024 / 1024} MB (Temporal refuses payloads over 2 MB): shorten tables.mappings (use % patterns) or split the migration`,
    );
  }
}
