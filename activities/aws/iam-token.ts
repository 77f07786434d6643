/**
 * RDS IAM authentication (`auth: iam`): a token the worker signs with its AWS identity
 * (`rds-db:connect` on the database user) stands in for the password. A token lives 15
 * minutes, so one is made for every new connection, never stored.
 */
import { Signer } from '@aws-sdk/rds-signer';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../plan/failure-types';

export interface IamAuth {
  host: string;
  port: number;
  user: string;
  region: string;
}

export async function rdsAuthToken(a: IamAuth, side: string): Promise<string> {
  try {
    return await new Signer({ hostname: a.host, port: a.port, username: a.user, region: a.region }).getAuthToken();
  } catch (err) {
    throw ApplicationFailure.create({
      type: FailureType.AuthenticationFailed,
      nonRetryable: true,
      message: `${side}: no RDS IAM token for ${a.user}@${a.host}:${a.port}: ${(err as Error).message}`,
      details: [{ endpoint: side, hint: "give the workers an AWS identity allowed rds-db:connect for this user (or use auth: password), then run dbferry retry" }],
    });
  }
}
