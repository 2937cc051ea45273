// `actool validate`, the appc reference validator, when it is installed.
import { UserError } from '../util/errors.js'
import { CommandError, errorLine, findOnPath, run } from '../util/exec.js'

/** Whether `validateWithActool` will run actool, for a caller that shows the step only then. */
export function actoolInstalled(): boolean {
  return findOnPath('actool') !== undefined
}

/**
 * Validates images, all in one actool run (a layered build's new layers with its app image); resolves
 * false when actool is not installed, throws when it rejects one. `shownAs` names a file in the error
 * as the user knows it (a staged file by where it is going).
 */
export async function validateWithActool(
  images: readonly string[],
  signal?: AbortSignal,
  shownAs: (file: string) => string = (file) => file,
): Promise<boolean> {
  const actool = findOnPath('actool')
  if (!actool) return false
  try {
    await run(actool, ['validate', ...images], { signal })
    return true
  } catch (error) {
    if (!(error instanceof CommandError)) throw error
    // actool starts its line with the file it rejects.
    const line = errorLine(error.stderr) ?? `exit ${error.exitCode}`
    const file = images.find((image) => line.startsWith(`${image}: `))
    const what = file ?? (images.length === 1 ? images[0] : undefined)
    throw new UserError(
      `actool validate rejected ${what ? shownAs(what) : 'an image'}: ${file ? line.slice(file.length + 2) : line}`,
    )
  }
}
