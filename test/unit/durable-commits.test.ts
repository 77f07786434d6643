import { DurableCommits } from '../../activities/apply/durable-commits';

describe('DurableCommits: the source forgets only what is on the target disk', () => {
  it('gives the furthest position whose commit the flush has passed, once', () => {
    const d = new DurableCommits();
    d.committed(100n, 'postgres:0/A');
    d.committed(200n, 'postgres:0/B');
    d.committed(300n, 'postgres:0/C');
    expect(d.flushedTo(99n)).toBeUndefined();
    expect(d.flushedTo(250n)).toBe('postgres:0/B');
    expect(d.waiting).toBe(true);
    expect(d.flushedTo(250n)).toBeUndefined();
    expect(d.flushedTo(300n)).toBe('postgres:0/C');
    expect(d.waiting).toBe(false);
  });

  it('moves an idle position onto the last waiting commit, and refuses when nothing waits', () => {
    const d = new DurableCommits();
    expect(d.extend('postgres:0/1')).toBe(false);
    d.committed(100n, 'postgres:0/A');
    d.committed(200n, 'postgres:0/B');
    expect(d.extend('postgres:0/F')).toBe(true);
    expect(d.flushedTo(150n)).toBe('postgres:0/A');
    expect(d.flushedTo(199n)).toBeUndefined();
    expect(d.flushedTo(200n)).toBe('postgres:0/F');
    expect(d.extend('postgres:0/10')).toBe(false);
  });
});
