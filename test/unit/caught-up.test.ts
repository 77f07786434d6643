import { CAUGHT_UP_WITHIN_MS, STALLED_AFTER_MS, SourcePositions } from '../../activities/apply/caught-up';

const compare = (a: string, b: string) => Number(a) - Number(b);

describe('caught up', () => {
  it('needs a source position read lately that the applied position has reached', () => {
    const seen = new SourcePositions(compare);
    expect(seen.caughtUp('100', 0)).toBe(false); // nothing read from the source yet
    seen.add('100', 1_000);
    expect(seen.caughtUp('99', 1_500)).toBe(false);
    expect(seen.caughtUp('100', 1_500)).toBe(true);
  });

  it('under a steady writer: the source is always further, yet what was read a moment ago is passed', () => {
    const seen = new SourcePositions(compare);
    seen.add('100', 0);
    seen.add('200', 2_000);
    seen.add('300', 4_000);
    // Applied 250: behind the newest read (300) but past one read 2 s before.
    expect(seen.caughtUp('250', 4_100)).toBe(true);
  });

  it('a position read too long ago says nothing (the source may be stuck decoding, or unreachable)', () => {
    const seen = new SourcePositions(compare);
    seen.add('100', 0);
    expect(seen.caughtUp('500', CAUGHT_UP_WITHIN_MS + 1)).toBe(false);
    expect(seen.caughtUp('', 10)).toBe(false);
  });
});

describe('a stuck stream', () => {
  it('is not caught up once the source is ahead and nothing arrived since that was read', () => {
    const seen = new SourcePositions(compare);
    seen.add('100', 0);
    seen.event(50);
    seen.add('900', 1_000); // a large transaction committed: the source decodes it (or fails to)
    expect(seen.caughtUp('100', 1_200)).toBe(true); // 100 was read 1.2 s ago and is reached
    expect(seen.caughtUp('100', 1_000 + STALLED_AFTER_MS + 1)).toBe(false);
    seen.event(1_600); // changes flow again
    expect(seen.caughtUp('100', 1_700)).toBe(true);
  });
});
