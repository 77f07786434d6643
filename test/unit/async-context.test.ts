import { spawnSync } from 'node:child_process';
import { asyncContextAdvice, asyncContextFrames, nodeFlags } from '../../worker/async-context';

describe('async context frames (the worker warns when CDC would pay for async hooks)', () => {
  it('knows which Node.js versions and flags have them', () => {
    expect(asyncContextFrames('v20.20.2', [])).toBe(false);
    expect(asyncContextFrames('v20.20.2', ['--experimental-async-context-frame'])).toBe(false);
    expect(asyncContextFrames('v22.23.5', [])).toBe(false);
    expect(asyncContextFrames('v22.23.5', ['--experimental-async-context-frame'])).toBe(true);
    expect(asyncContextFrames('v24.1.0', [])).toBe(true);
    expect(asyncContextFrames('v24.1.0', ['--no-async-context-frame'])).toBe(false);
  });

  it('advises the flag on Node.js 22, Node.js 24 on 20, and nothing when frames are on', () => {
    expect(asyncContextAdvice('v22.23.5', [], undefined)).toMatch(/NODE_OPTIONS=--experimental-async-context-frame/);
    expect(asyncContextAdvice('v20.20.2', [], undefined)).toMatch(/Node\.js 24/);
    expect(asyncContextAdvice('v22.23.5', [], '--max-old-space-size=512 --experimental-async-context-frame')).toBeUndefined();
    expect(asyncContextAdvice('v22.23.5', ['--experimental-async-context-frame'], undefined)).toBeUndefined();
  });

  it('agrees with how this Node.js really tracks a promise (hooks give it an async id of its own)', () => {
    // In a child process: jest may enable async hooks of its own.
    const script = `
      const { AsyncLocalStorage, executionAsyncId } = require('node:async_hooks');
      new AsyncLocalStorage().run(1, () => Promise.resolve().then(() => console.log(executionAsyncId() === 0 ? 'frames' : 'hooks')));`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const expected = asyncContextFrames(process.version, nodeFlags(process.execArgv, process.env.NODE_OPTIONS));
    expect(r.stdout.trim()).toBe(expected ? 'frames' : 'hooks');
  });
});
