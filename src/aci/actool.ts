// `actool validate`, the appc reference validator, when it is installed.
import { UserError } from '../util/errors.js'
import { CommandError, errorLine, findOnPath, run } from '../util/exec.js'

/** Whether `validateWithActool` will run actool, for a caller that shows the step only then. */
export function actoolInstalled(): boolean {
  return findOnPath('actool') !== undefined
}

/** Validates an image; resolves false when actool is not installed, throws when it rejects the image. */
export async function validateWithActool(image: string, signal?: AbortSignal): Promise<boolean> {
  const actool = findOnPath('actool')
  if (!actool) return false
  try {
    await run(actool, ['validate', image], { signal })
    return true
  } catch (error) {
    if (!(error instanceof CommandError)) throw error
    throw new UserError(`actool validate rejected the image: ${errorLine(error.stderr) ?? `exit ${error.exitCode}`}`)
  }
}
