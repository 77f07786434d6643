import type { EnginePosition } from '../engine';
import { formatLsn, parseLsn } from './lsn';

const PREFIX = 'postgres:';

/** An LSN (text or bigint) as an engine position: `postgres:16/B374D848`. */
export function pgPosition(lsn: string | bigint): EnginePosition {
  return PREFIX + (typeof lsn === 'bigint' ? formatLsn(lsn) : formatLsn(parseLsn(lsn)));
}

/**
 * The LSN of a position. A bare LSN is accepted too: the plan's `cdc.startPosition` and
 * bookkeeping written before positions carried their engine.
 */
export function lsnOf(position: EnginePosition): bigint {
  const text = position.startsWith(PREFIX) ? position.slice(PREFIX.length) : position;
  if (text.includes(':')) throw new Error(`not a PostgreSQL position: ${JSON.stringify(position)}`);
  return parseLsn(text);
}
