/**
 * An error the user can act on: the CLI prints its message as one line and exits with `exitCode`.
 * Anything else that escapes is a bug and is reported as such.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message)
    this.name = 'UserError'
  }
}

/** A usage line: printed as it is, without the program-name prefix of other errors. */
export class UsageError extends UserError {}

/** The message of anything thrown, as text. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
