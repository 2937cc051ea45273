// Detached, ASCII-armoured signatures as rkt verifies them (`rkt trust` + `<image>.aci.asc`),
// made by the user's own gpg. Passphrases stay with gpg-agent and pinentry: none is ever passed here.
import { UserError } from '../util/errors.js'
import { CommandError, errorLine, findOnPath, run } from '../util/exec.js'

/**
 * Refuses a signing build up front, before any Nix work, when gpg is missing or has no secret key to
 * sign with: the named one, or any (gpg's default key) without `--key`.
 */
export function checkSigningKey(key: string | undefined, signal: AbortSignal): Promise<void> {
  // Once per key in a run: the images of a spec signed with one key ask gpg once.
  let checking = checkedKeys.get(key ?? '')
  if (!checking) {
    checking = findSecretKey(key, signal)
    checkedKeys.set(key ?? '', checking)
  }
  return checking
}

const checkedKeys = new Map<string, Promise<void>>()

async function findSecretKey(key: string | undefined, signal: AbortSignal): Promise<void> {
  const gpg = requireGpg()
  const listed = await run(gpg, ['--batch', '--list-secret-keys', '--with-colons', ...(key ? [key] : [])], {
    signal,
  }).catch((error: unknown) => {
    if (!(error instanceof CommandError)) throw error
    return undefined
  })
  if (listed && /^sec:/m.test(listed.stdout)) return
  const keyring = process.env.GNUPGHOME ? `GNUPGHOME=${process.env.GNUPGHOME}` : '~/.gnupg'
  throw new UserError(
    key
      ? `--sign: gpg has no secret key ${key} (${keyring}); gpg --list-secret-keys shows the keys there`
      : `--sign: gpg has no secret key to sign with (${keyring}); make one with gpg --quick-gen-key, or name one with --key`,
  )
}

/** gpg's path; `what` (`--sign`, `publish`) heads the one-line refusal where gpg is not installed. */
export function requireGpg(what = '--sign'): string {
  const gpg = findOnPath('gpg')
  if (!gpg)
    throw new UserError(`${what}: gpg is not installed (not on PATH); install it with: sudo apt-get install gnupg`)
  return gpg
}

export async function signImage(
  image: string,
  signature: string,
  key: string | undefined,
  signal: AbortSignal,
): Promise<void> {
  const gpg = requireGpg()
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

export type SignatureCheck = { status: 'good' } | { status: 'bad' | 'unverified'; detail: string }

/**
 * Verifies a detached signature with the user's gpg and keyring, as a person would (`gpg --verify`):
 * `bad` when the image does not match it, `unverified` when gpg cannot tell (no public key, no gpg).
 */
export async function verifySignature(image: string, signature: string, signal?: AbortSignal): Promise<SignatureCheck> {
  const gpg = findOnPath('gpg')
  if (!gpg) return { status: 'unverified', detail: 'gpg is not installed (not on PATH)' }
  try {
    await run(gpg, ['--batch', '--verify', signature, image], { signal })
    return { status: 'good' }
  } catch (error) {
    if (!(error instanceof CommandError)) throw error
    // gpg exits 1 for a signature that does not match, 2 when it cannot check one at all.
    const detail = errorLine(error.stderr, 'gpg: ') ?? `gpg exited with ${error.exitCode}`
    return { status: error.exitCode === 1 ? 'bad' : 'unverified', detail }
  }
}
