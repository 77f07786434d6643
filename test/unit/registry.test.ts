import { DatabaseMigrationServiceClient, DescribeReplicationTasksCommand, ResourceNotFoundFault } from '@aws-sdk/client-database-migration-service';
import { mockClient } from 'aws-sdk-client-mock';
import { createActivities, type ActivityDeps } from '../../activities';
import type { SourceEngine } from '../../activities/engine';
import { parsePlan, type Plan } from '../../plan';

/**
 * The registry picks the source engine by `source.engine` and refuses what this worker cannot
 * run, before touching any database: dependencies are injected, so a fake engine stands in.
 */
function planWith(fields: Record<string, unknown>): Plan {
  const r = parsePlan({ name: 'reg', source: { engine: 'postgres', url: 'env:SRC' }, target: { engine: 'postgres', url: 'env:TGT' }, ...fields });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.plan;
}

const migration = { name: 'reg', runId: 'run' };

function depsWith(engines: ActivityDeps['engines']): ActivityDeps {
  return {
    engines,
    target: async () => ({ side: 'target', url: 'postgres://t@localhost/t', description: 'target postgres/fake', database: 't', secrets: [] }),
    alert: async () => undefined,
  };
}

describe('the activity registry', () => {
  test('the engine named by source.engine serves the source side (here a fake one)', async () => {
    const calls: string[] = [];
    const fake = { name: 'postgres', description: 'source fake', cdc: { cleanup: async () => ({ dropped: ['fake slot'], kept: [] }) } } as unknown as SourceEngine;
    const activities = createActivities(
      depsWith({
        postgres: async (plan) => {
          calls.push(plan.source.engine);
          return fake;
        },
      }),
    );
    const r = await activities.cleanupSource({ plan: planWith({ mode: 'full-load-and-cdc' }), migration });
    expect(r).toEqual({ dropped: ['fake slot'], kept: [] });
    expect(calls).toEqual(['postgres']);
  });

  test('a source engine this worker does not have is refused, non-retryable, naming it', async () => {
    const activities = createActivities(depsWith({}));
    await expect(activities.preflight({ plan: planWith({ source: { engine: 'mysql', url: 'env:SRC' } }), migration })).rejects.toMatchObject({
      type: 'Unsupported',
      nonRetryable: true,
      message: expect.stringContaining('source.engine mysql'),
    });
  });

  test('runner aws: what CDC holds is DMS’s task, asked of AWS; no source engine is built for it', async () => {
    const dms = mockClient(DatabaseMigrationServiceClient);
    dms.on(DescribeReplicationTasksCommand).rejects(new ResourceNotFoundFault({ message: 'No replication tasks found', $metadata: {} }));
    try {
      let built = false;
      const activities = createActivities(
        depsWith({
          postgres: async () => {
            built = true;
            throw new Error('not reached');
          },
        }),
      );
      const plan = planWith({ mode: 'full-load-and-cdc', runner: 'aws', aws: { region: 'eu-west-1', replicationInstance: { id: 'ri', class: 'dms.t3.medium' } } });
      await expect(activities.cleanupSource({ plan, migration })).resolves.toEqual({ dropped: [], kept: [] });
      expect(built).toBe(false);
      expect(dms.commandCalls(DescribeReplicationTasksCommand)[0]!.args[0].input).toMatchObject({ Filters: [{ Name: 'replication-task-id', Values: ['dbferry-reg-task'] }] });
    } finally {
      dms.restore();
    }
  });
});
