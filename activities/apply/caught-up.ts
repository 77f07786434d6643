import type { EnginePosition } from '../engine';

/** "Caught up" means: the target has everything the source had committed this recently. */
export const CAUGHT_UP_WITHIN_MS = 2_500;
/** A newest source position not reached, and no change received since it was read, for this long: the stream is stuck. */
export const STALLED_AFTER_MS = 500;

/**
 * The source positions the applier has read (with when it read them), to say whether CDC has
 * caught up. Comparing with the newest position only would, under a steady writer, almost
 * never say yes (the source is always a few changes further by the time they are applied);
 * comparing with "no message for a while" says yes while the source is still decoding a large
 * transaction. A position read at time t that the applied position has passed means the
 * target had, at t at the latest, all the source had: that is what "caught up" promises.
 * Unless the stream has gone silent since the newest position was read while the target is
 * short of it (the source is decoding, or failing on, a transaction it cannot send yet).
 */
export class SourcePositions {
  #seen: Array<{ position: EnginePosition; at: number }> = [];
  #lastEventAt = 0;

  constructor(private readonly compare: (a: EnginePosition, b: EnginePosition) => number) {}

  /** `readAt`: when the query that returned it was sent (the position is at least that recent). */
  add(position: EnginePosition, readAt: number): void {
    this.#seen.push({ position, at: readAt });
    this.#seen = this.#seen.filter((s) => readAt - s.at <= CAUGHT_UP_WITHIN_MS);
  }

  /** The stream delivered something (a change, a transaction boundary). */
  event(at: number): void {
    this.#lastEventAt = at;
  }

  /** Whether `applied` (committed on the target) has reached a source position read within the window. */
  caughtUp(applied: EnginePosition, now: number): boolean {
    if (!applied) return false;
    const newest = this.#seen[this.#seen.length - 1];
    if (newest && this.compare(applied, newest.position) < 0 && now - newest.at > STALLED_AFTER_MS && this.#lastEventAt < newest.at) return false;
    return this.#seen.some((s) => now - s.at <= CAUGHT_UP_WITHIN_MS && this.compare(applied, s.position) >= 0);
  }
}
