/** Exit codes (README, "CLI"; docs/plan.md): scripts and runbooks depend on them. */
export const Exit = {
  Ok: 0,
  Failed: 1,
  BadInput: 2,
  AwaitingOperator: 3,
  UnknownMigration: 4,
  Refused: 5,
  TemporalUnreachable: 6,
  Aborted: 7,
} as const;

export type ExitCode = (typeof Exit)[keyof typeof Exit];

/** A user-facing failure: printed as one line (no stack trace) and mapped to its exit code. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    readonly exitCode: ExitCode,
    message: string,
  ) {
    super(message);
  }
}
