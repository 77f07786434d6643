import type { RetryPolicy } from '@temporalio/common';

/**
 * Transient failures (connection refused or reset, server restarting) are retried with backoff
 * for about half a minute; failures that need a person are raised non-retryable by the
 * activities and reach the operator at once.
 */
export const activityRetry: RetryPolicy = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '30 seconds',
  maximumAttempts: 5,
};

/**
 * CDC rides out a source or target restart by itself: backoff up to a minute for about a
 * quarter of an hour before the operator is asked.
 */
export const cdcRetry: RetryPolicy = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '1 minute',
  maximumAttempts: 20,
};
