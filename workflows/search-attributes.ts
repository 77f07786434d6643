import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** The search attributes of PLAN.md (all Keyword). Source and target never carry credentials. */
export const DBFERRY_MIGRATION = defineSearchAttributeKey('DbferryMigration', SearchAttributeType.KEYWORD);
export const DBFERRY_PHASE = defineSearchAttributeKey('DbferryPhase', SearchAttributeType.KEYWORD);
export const DBFERRY_SOURCE = defineSearchAttributeKey('DbferrySource', SearchAttributeType.KEYWORD);
export const DBFERRY_TARGET = defineSearchAttributeKey('DbferryTarget', SearchAttributeType.KEYWORD);

export const SEARCH_ATTRIBUTES = [DBFERRY_MIGRATION, DBFERRY_PHASE, DBFERRY_SOURCE, DBFERRY_TARGET] as const;

/** One workflow per migration: its id is derived from the plan's name (PLAN.md). */
export function migrationWorkflowId(name: string): string {
  return `migration-${name}`;
}
