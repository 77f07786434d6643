import { PublishCommand } from '@aws-sdk/client-sns';
import type { Alert } from '../../plan/migration-types';
import type { Plan } from '../../plan/plan-schema';
import { awsCall, awsClients } from '../aws/aws-call';

/**
 * Publishes an alert to the plan's SNS topic (`aws.snsTopicArn`, any runner): the same JSON the
 * webhook receives, with a one-line subject for e-mail subscribers. Throttling is retried by
 * awsCall; a refusal (permissions, a wrong topic) fails the delivery like a webhook's HTTP error.
 */
export async function publishAlert(plan: Plan, alert: Alert): Promise<void> {
  const topic = plan.aws?.snsTopicArn;
  if (!topic) return;
  const subject = `dbferry ${plan.name}: ${alert.kind}${alert.step ? ` (${alert.step})` : ''}`;
  await awsCall('SNS Publish', () =>
    awsClients(plan).sns.send(
      new PublishCommand({
        TopicArn: topic,
        // SNS subjects: at most 100 printable ASCII characters.
        Subject: subject.replace(/[^\x20-\x7e]/g, '?').slice(0, 100),
        Message: JSON.stringify({ ...alert, migration: plan.name }),
      }),
    ),
  );
}
