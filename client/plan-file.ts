import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { formatPlanIssues, parsePlanYaml, unsupportedFeatures, type Plan } from '../plan';
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
      return JSON.parse(readFileSync(full, 'utf8')) as unknown;
    },
  });
  if (!res.ok) throw new CliError(Exit.BadInput, formatPlanIssues(res.issues, path));
  const unsupported = unsupportedFeatures(res.plan);
  if (unsupported.length > 0) throw new CliError(Exit.BadInput, formatPlanIssues(unsupported, path));
  return res.plan;
}
