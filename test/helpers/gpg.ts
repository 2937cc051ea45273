// A throwaway GnuPG home with one signing key, for tests that sign images.
import { execFileSync, spawnSync } from 'node:child_process'
import { makeTempDir } from './cli.js'

export interface ThrowawayKey {
  /** The GNUPGHOME that holds the key. */
  home: string
  fingerprint: string
  /** Stops the gpg-agent this home started, then deletes the home. */
  remove(): void
}

/**
 * Makes a passphrase-less signing key for `userId` in a fresh GNUPGHOME (mode 0700): ed25519, or
 * rsa2048 for rkt 1.30, whose openpgp cannot verify ed25519 ("unsupported public key algorithm 22").
 */
export function makeThrowawayKey(userId: string, algorithm: 'ed25519' | 'rsa2048' = 'ed25519'): ThrowawayKey {
  const dir = makeTempDir('nix2aci-gnupg-')
  const env = { ...process.env, GNUPGHOME: dir.path }
  const gpg = (...args: string[]) => execFileSync('gpg', ['--batch', ...args], { env, encoding: 'utf8' })
  const remove = () => {
    spawnSync('gpgconf', ['--kill', 'gpg-agent'], { env })
    dir.remove()
  }
  try {
    gpg('--passphrase', '', '--quick-gen-key', userId, algorithm, 'sign', 'never')
    const fingerprint = /^fpr:+([0-9A-F]+):/m.exec(gpg('--with-colons', '--list-secret-keys'))![1]!
    return { home: dir.path, fingerprint, remove }
  } catch (error) {
    remove()
    throw error
  }
}
