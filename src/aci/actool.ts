// `actool validate`, the appc reference validator, when it is installed.
import { UserError } from '../util/errors.js'
import { CommandError, errorLine, findOnPath, run } from '../util/exec.js'

/** Whether `validateWithActool` will run actool, for a caller that shows the step only then. */
export function actoolInstalled(): boolean {
  return findOnPath('actool') !== undefined
}

/**
 * Validates images, all in one actool run (a layered build's new layers with its app image); resolves
 * false when actool is not installed, throws when it rejects one (its line names the file).
 */
export async function validateWithActool(images: readonly string[], signal?: AbortSignal): Promise<boolean> {
  const actool = findOnPath('actool')
  if (!actool) return false
  try {
    await run(actool, ['validate', ...images], { signal })
    return true
  } catch (error) {
    if (!(error instanceof CommandError)) throw error
    const what = images.length === 1 ? 'the image' : 'an image'
    throw new UserError(`actool validate rejected ${what}: ${errorLine(error.stderr) ?? `exit ${error.exitCode}`}`)
  }
}
