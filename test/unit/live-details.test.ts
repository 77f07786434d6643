import { defaultPayloadConverter } from '@temporalio/common';
import { liveDetails } from '../../client/migrations';
import { cdcProgress } from '../../client/render';

/** What `dbferry status`, `watch` and `start --wait` take from the running activities. */
const payload = (v: unknown) => ({ payloads: [defaultPayloadConverter.toPayload(v)] });

describe('live details of running activities', () => {
  test('a holder asked to stop (the load is done) is not live any more; a running loader is', () => {
    const live = liveDetails([
      { activityType: { name: 'holdSnapshot' }, state: 3, heartbeatDetails: payload({ holding: { generation: 1 } }) },
      { activityType: { name: 'loadTask' }, state: 2, heartbeatDetails: payload({ task: 4, bytes: 10 }) },
    ]);
    expect(live).toEqual([{ activity: 'loadTask', task: 4, bytes: 10 }]);
  });

  test('an applier waiting to retry after a failed attempt is failing, not caught up, whatever it said last', () => {
    const said = { appliedPosition: 'postgres:0/10', sourcePosition: 'postgres:0/10', caughtUp: true, lagBytes: '0', lagSeconds: 0, transactions: 1, changes: 1, tables: [], at: '' };
    const running = cdcProgress(liveDetails([{ activityType: { name: 'streamChanges' }, state: 2, attempt: 1, heartbeatDetails: payload(said) }]));
    expect(running?.caughtUp).toBe(true);
    const failing = cdcProgress(
      liveDetails([{ activityType: { name: 'streamChanges' }, state: 1, attempt: 3, lastFailure: { message: 'walsender died' }, heartbeatDetails: payload(said) }]),
    );
    expect(failing).toMatchObject({ caughtUp: false, retrying: { attempt: 3, error: 'walsender died' } });
  });
});
