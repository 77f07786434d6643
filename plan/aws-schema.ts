/** The plan's `aws` section: the RDS target instance (any runner) and the aws runner's resources. */
import { z } from 'zod';
import { expected, nonEmptyString, strict } from './schema-messages';

const awsName = (what: string, requiredHint?: string) => nonEmptyString(what, requiredHint);

export const awsSchema = strict(
  {
    region: z
      .string(expected('an AWS region, e.g. eu-west-1', 'an AWS region, e.g. eu-west-1'))
      .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, expected('an AWS region, e.g. eu-west-1')),
    rds: strict(
      {
        instanceId: awsName('an RDS instance identifier', 'the RDS instance identifier'),
        create: strict(
          {
            class: awsName('an instance class, e.g. db.r6g.large', 'an instance class, e.g. db.r6g.large'),
            engineVersion: awsName('a version string, e.g. "16.4" (quote it in YAML)').optional(),
            storageGb: z.int(expected('a positive integer', 'storage in GB')).positive(expected('a positive integer')),
            subnetGroup: awsName('a DB subnet group name').optional(),
            securityGroups: z.array(awsName('a security group id'), expected('a list of security group ids')).optional(),
            parameterGroup: awsName('a DB parameter group name').optional(),
          },
          'a mapping with class, engineVersion, storageGb, subnetGroup, securityGroups, parameterGroup',
        ).optional(),
      },
      'a mapping with instanceId and create',
    ).optional(),
    replicationInstance: strict(
      {
        // DMS keeps identifiers in lower case: an upper-case one would never be found again.
        id: awsName('a replication instance identifier', 'the replication instance identifier').regex(
          /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/,
          expected('a replication instance identifier: lower-case letters, digits and single hyphens, starting with a letter'),
        ),
        class: awsName('a replication instance class, e.g. dms.t3.medium', 'a class, e.g. dms.t3.medium'),
      },
      'a mapping with id and class',
    ).optional(),
    snsTopicArn: z
      .string(expected('an SNS topic ARN'))
      .regex(/^arn:aws[a-z-]*:sns:/, expected('an SNS topic ARN (arn:aws:sns:…)'))
      .optional(),
    cleanup: z.boolean(expected('true or false')).default(false),
  },
  'a mapping with region, rds, replicationInstance, snsTopicArn and cleanup',
).optional();
