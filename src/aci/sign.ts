// Detached, ASCII-armoured signatures as rkt verifies them (`rkt trust` + `<image>.aci.asc`),
// made by the user's own gpg. Passphrases stay with gpg-agent and pinentry: none is ever passed here.
import { UserError } from '../util/errors.js'
import { CommandError, errorLine, findOnPath, run } from '../util/exec.js'

export async function signImage(
  image: string,
  signature: string,
  key: string | undefined,
  signal: AbortSignal,
): Promise<void> {
  const gpg = findOnPath('gpg')
  if (!gpg)
    throw new UserError('--sign: gpg is not installed (not on PATH); install it with: sudo apt-get install gnupg')
  const args = [
    ...(process.stdin.isTTY ? [] : ['--batch']),
    '--yes',
    '--armor',
    '--detach-sign',
    ...(key ? ['--local-user', key] : []),
    '--output',
    signature,
    image,
  ]
  try {
    await run(gpg, args, { signal })
  } catch (error) {
    if (!(error instanceof CommandError)) throw error
    const reason = errorLine(error.stderr, 'gpg: ')
    throw new UserError(`gpg could not sign the image${key ? ` with key ${key}` : ''}: ${reason ?? 'unknown error'}`)
  }
}
