/** The plan's `aws` section: the RDS target instance (any runner) and the aws runner's resources. */
import { z } from 'zod';
import { expected, nonEmptyString, strict } from './schema-messages';

const awsName = (what: string, requiredHint?: string) => nonEmptyString(what, requiredHint);

export const awsSchema = strict(
  {
    region: z
      .string(expected('an AWS region, e.g. eu-west-1', 'an AWS region, e.g. eu-west-1'))
      .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, expected('an AWS region, e.g. eu-west-1'))
      .describe('The AWS region of the RDS instance, the DMS resources and the SNS topic, e.g. eu-west-1.'),
    rds: strict(
      {
        instanceId: awsName('an RDS instance identifier', 'the RDS instance identifier').describe(
          'The RDS for PostgreSQL instance\'s identifier: adopted when it exists, created from create when it does not.',
        ),
        create: strict(
          {
            class: awsName('an instance class, e.g. db.r6g.large', 'an instance class, e.g. db.r6g.large').describe('The DB instance class, e.g. db.r6g.large.'),
            engineVersion: awsName('a version string, e.g. "16.4" (quote it in YAML)')
              .describe('The PostgreSQL version, a string such as "16.4" (quote it in YAML). Default: RDS\'s default version.')
              .optional(),
            storageGb: z
              .int(expected('a positive integer', 'storage in GB'))
              .positive(expected('a positive integer'))
              .describe('Allocated storage in GB, a positive integer.'),
            subnetGroup: awsName('a DB subnet group name').describe('The DB subnet group\'s name. Default: none (RDS uses the default VPC).').optional(),
            securityGroups: z
              .array(awsName('a security group id'), expected('a list of security group ids'))
              .describe('VPC security group ids, e.g. [sg-0abc]. Default: the VPC\'s default group.')
              .optional(),
            parameterGroup: awsName('a DB parameter group name').describe('The DB parameter group\'s name. Default: RDS\'s default group.').optional(),
          },
          'a mapping with class, engineVersion, storageGb, subnetGroup, securityGroups, parameterGroup',
        )
          .describe(
            'How to create the instance when it does not exist (PostgreSQL, encrypted, not publicly accessible; master user and password from the target URL): class and storageGb, optionally engineVersion, subnetGroup, securityGroups, parameterGroup.',
          )
          .optional(),
      },
      'a mapping with instanceId and create',
    )
      .describe('Any runner: the target is this RDS instance (its endpoint replaces the target URL\'s host), adopted by instanceId or created from create.')
      .optional(),
    replicationInstance: strict(
      {
        // DMS keeps identifiers in lower case: an upper-case one would never be found again.
        id: awsName('a replication instance identifier', 'the replication instance identifier').regex(
          /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/,
          expected('a replication instance identifier: lower-case letters, digits and single hyphens, starting with a letter'),
        ).describe('The replication instance\'s identifier: lowercase letters, digits and single hyphens, starting with a letter. Adopted when it exists, else created.'),
        class: awsName('a replication instance class, e.g. dms.t3.medium', 'a class, e.g. dms.t3.medium').describe(
          'The replication instance class used when dbferry creates it, e.g. dms.t3.medium.',
        ),
      },
      'a mapping with id and class',
    )
      .describe('Runner aws (required there): the DMS replication instance, {id, class}.')
      .optional(),
    snsTopicArn: z
      .string(expected('an SNS topic ARN'))
      .regex(/^arn:aws[a-z-]*:sns:/, expected('an SNS topic ARN (arn:aws:sns:…)'))
      .describe('Any runner: an SNS topic ARN (arn:aws:sns:…) that gets dbferry\'s alerts too; with runner aws also DMS\'s task events.')
      .optional(),
    cleanup: z
      .boolean(expected('true or false'))
      .default(false)
      .describe('Runner aws: true deletes the DMS task, endpoints, certificates, event subscription (and a replication instance dbferry created) at finalize.'),
  },
  'a mapping with region, rds, replicationInstance, snsTopicArn and cleanup',
)
  .describe('AWS resources: region; rds and snsTopicArn for any runner; replicationInstance and cleanup for runner aws. Optional (required with runner aws).')
  .optional();
