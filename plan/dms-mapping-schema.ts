/**
 * AWS DMS table-mapping documents (`tables.mappings`): selection rules, as DMS reads them.
 * Transformation and table-settings rules are recognized and refused as not supported yet.
 */
import { z } from 'zod';
import { expected, nonEmptyString, oneOf, strict } from './schema-messages';

const objectLocator = strict(
  {
    'schema-name': nonEmptyString('a schema name (% is a wildcard)', 'a schema name'),
    'table-name': nonEmptyString('a table name (% is a wildcard)', 'a table name'),
    'table-type': z.literal('table', expected('table (views are not supported yet)')).optional(),
  },
  'a mapping with schema-name and table-name',
  'schema-name and table-name',
);

const ruleId = z.union([z.string(), z.number()], expected('a string or a number'));

export const selectionRuleSchema = strict(
  {
    'rule-type': z.literal('selection'),
    'rule-id': ruleId.optional(),
    'rule-name': ruleId.optional(),
    'rule-action': oneOf(['include', 'exclude', 'explicit'], 'include, exclude or explicit'),
    'object-locator': objectLocator,
    'load-order': z.number(expected('a number')).optional(),
    filters: z
      .array(z.unknown(), expected('a list'))
      .max(0, { error: 'not supported yet: selection rule filters (only whole tables are selected)' })
      .optional(),
  },
  'a selection rule',
);

/**
 * Rules are dispatched on `rule-type` by hand: a zod union would report every alternative's
 * failures for one wrong field.
 */
const mappingRules = z.array(z.unknown(), expected('a list of rules', 'a list of rules')).superRefine((rules, ctx) => {
  let selecting = 0;
  let valid = 0;
  rules.forEach((rule, i) => {
    const type = rule !== null && typeof rule === 'object' && !Array.isArray(rule) ? (rule as Record<string, unknown>)['rule-type'] : undefined;
    if (type === 'transformation' || type === 'table-settings') {
      ctx.addIssue({ code: 'custom', path: [i], message: `not supported yet: ${type} rules (only selection rules are)` });
      return;
    }
    if (rule === null || typeof rule !== 'object' || Array.isArray(rule)) {
      ctx.addIssue({ code: 'custom', path: [i], message: 'expected a rule (a mapping with rule-type, rule-id, rule-action, object-locator)' });
      return;
    }
    if (type !== 'selection') {
      ctx.addIssue({
        code: 'custom',
        path: [i, 'rule-type'],
        message: `${type === undefined ? 'required' : 'expected'} selection (transformation and table-settings rules are not supported yet)`,
      });
      return;
    }
    const r = selectionRuleSchema.safeParse(rule);
    if (!r.success) {
      for (const iss of r.error.issues) {
        const base = [i, ...iss.path];
        if (iss.code === 'unrecognized_keys') {
          for (const key of iss.keys) ctx.addIssue({ code: 'custom', path: [...base, key], message: iss.message });
        } else {
          ctx.addIssue({ code: 'custom', path: base, message: iss.message });
        }
      }
      return;
    }
    const loc = r.data['object-locator'];
    if (r.data['rule-action'] === 'explicit') {
      for (const key of ['schema-name', 'table-name'] as const) {
        if (loc[key].includes('%')) {
          ctx.addIssue({ code: 'custom', path: [i, 'object-locator', key], message: 'expected an exact name: an explicit rule selects one table, without % wildcards' });
        }
      }
    }
    valid++;
    if (r.data['rule-action'] !== 'exclude') selecting++;
  });
  // Only judged when every rule is valid: a broken include rule would make this message wrong.
  if (rules.length === 0) ctx.addIssue({ code: 'custom', message: 'expected at least one selection rule' });
  else if (selecting === 0 && valid === rules.length) {
    ctx.addIssue({ code: 'custom', message: 'expected at least one selection rule with rule-action include or explicit (exclude rules alone select nothing)' });
  }
});

export const tableMappingSchema = strict({ rules: mappingRules }, 'an AWS DMS table-mapping document ({"rules": [...]})');
