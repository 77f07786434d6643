import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';
import type { ActivityInput, CreateDatabaseResult } from '../../plan/migration-types';
import { withHeartbeat } from '../heartbeat';
import { resolveEndpoint, withConnection } from '../pg/connection';
import { quoteIdent } from '../../plan/sql-names';
import { toFailure } from '../pg/errors';
import { ensureRdsInstance } from '../aws/rds';
import { resolveSecret } from '../secrets';

/**
 * CREATE DATABASE on the target server when it is missing and the plan allows it; with
 * `aws.rds`, the RDS instance is adopted or created and waited for first.
 */
export async function createDatabasePostgres({ plan }: ActivityInput): Promise<CreateDatabaseResult> {
  let instance: CreateDatabaseResult['rdsInstance'];
  if (plan.aws?.rds) {
    const url = new URL(await resolveSecret(plan.target.url, 'target.url'));
    instance = await withHeartbeat(
      () => ({ step: `RDS instance ${plan.aws!.rds!.instanceId}: adopt or create, wait until available` }),
      () => ensureRdsInstance(plan, { user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) }),
    );
  }
  const tgt = await resolveEndpoint(plan, 'target');
  const made = await withHeartbeat(() => ({ step: 'create database' }), () => withConnection(
    tgt,
    'create database',
    async (c) => {
      const { rows } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [tgt.database]);
      if (rows.length > 0) return { database: tgt.database, created: false };
      if (!plan.target.createDatabase) {
        throw ApplicationFailure.create({
          type: FailureType.TargetDatabaseMissing,
          nonRetryable: true,
          message: `${tgt.description}: database ${tgt.database} does not exist and target.createDatabase is false`,
          details: [{ endpoint: tgt.description, hint: 'create the database, then run dbferry retry' }],
        });
      }
      try {
        await c.query(`CREATE DATABASE ${quoteIdent(tgt.database)}`);
      } catch (err) {
        // Created concurrently (or by a previous attempt whose reply was lost): that is what we wanted.
        if ((err as { code?: string }).code === '42P04') return { database: tgt.database, created: false };
        throw toFailure(err, 'target', { endpoint: tgt.description, secrets: tgt.secrets, doing: `creating database ${tgt.database}` });
      }
      return { database: tgt.database, created: true };
    },
    'postgres',
  ));
  return instance ? { ...made, rdsInstance: instance } : made;
}
