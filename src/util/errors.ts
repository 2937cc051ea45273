/**
 * An error the user can act on: the CLI prints its message as one line and exits with `exitCode`.
 * `details` follow that line, indented: what a tool showed about it (a failed build's last log lines).
 * Anything else that escapes is a bug and is reported as such.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    readonly details: readonly string[] = [],
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
