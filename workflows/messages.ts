import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { CutoverAck, MigrationStatus, OperatorDecision } from '../plan/migration-types';

/** The operator's decision on a paused migration: synchronous, validated, idempotent by update id. */
export const operatorDecisionUpdate = defineUpdate<string, [OperatorDecision]>('operatorDecision');
/** Fallback for the same decision when an Update cannot be sent (it is applied only if valid). */
export const operatorDecisionSignal = defineSignal<[OperatorDecision]>('operatorDecisionSignal');
/**
 * Cutover of a CDC migration: checks that writes have stopped and writes the marker the applier
 * stops at; refused (with the reason) when that is not possible now. The workflow then drains,
 * validates and finalizes.
 */
export const cutoverUpdate = defineUpdate<CutoverAck, []>('cutover');
/** Holds CDC apply (the source keeps the changes meanwhile) / lets it continue. Refused when not possible now. */
export const pauseCdcUpdate = defineUpdate<string, [{ reason?: string }]>('pauseCdc');
export const resumeCdcUpdate = defineUpdate<string, []>('resumeCdc');
/** Live status (needs a worker; `dbferry status` falls back to the memo without one). */
export const statusQuery = defineQuery<MigrationStatus>('status');

/** Memo key holding the last published MigrationStatus (readable with describe(), no worker needed). */
export const STATUS_MEMO_KEY = 'dbferryStatus';
/** Failure type of a migration ended by the operator's abort. */
export const ABORTED_FAILURE_TYPE = 'MigrationAborted';
