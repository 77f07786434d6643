/**
 * Message helpers of the plan schema: every failure reads "expected <what>" (or "required
 * (<hint>)"), because plan errors are read by people fixing YAML and zod's generic texts do not
 * say what a field accepts. The parser appends the value it got.
 */
import { z } from 'zod';
import { secretRefProblem, type SecretField } from './secret-ref';

export type RawIssue = z.core.$ZodRawIssue;

/** Enums and literals report a missing value as invalid_value, not invalid_type. */
function isMissing(iss: RawIssue): boolean {
  return iss.input === undefined && iss.code !== 'unrecognized_keys';
}

export function required(hint?: string): string {
  return hint ? `required (${hint})` : 'required';
}

/** Every failure of the schema reads "expected <what>"; the parser appends the value it got. */
export function expected(what: string, requiredHint?: string) {
  return { error: (iss: RawIssue) => (isMissing(iss) ? required(requiredHint) : `expected ${what}`) };
}

export function strict<T extends z.core.$ZodLooseShape>(shape: T, what: string, requiredHint?: string) {
  const fields = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (iss: RawIssue) => {
      if (iss.code === 'unrecognized_keys') return `unknown field (expected one of: ${fields})`;
      if (isMissing(iss)) return required(requiredHint);
      return `expected ${what}`;
    },
  });
}

export function nonEmptyString(what: string, requiredHint?: string) {
  return z.string(expected(what, requiredHint)).min(1, expected(what));
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T, requiredHint?: string) {
  return z.enum(values, expected(`one of ${values.join(', ')}`, requiredHint));
}

export function secretRef(field: SecretField, what: string, requiredHint?: string) {
  return z.string(expected(what, requiredHint)).superRefine((value, ctx) => {
    const problem = secretRefProblem(value, field);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });
}
