// Signing with a throwaway gpg key: the signature verifies and a tampered image does not.
import { execFileSync, spawnSync } from 'node:child_process'
import { appendFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it, onTestFinished } from 'vitest'
import { buildJson, fixtureEnv, makeTempDir, runCli } from './helpers/cli.js'
import { makeThrowawayKey } from './helpers/gpg.js'

const key = makeThrowawayKey('nix2aci test <test@nix2aci.invalid>')
const { fingerprint } = key
const out = makeTempDir()
const env = fixtureEnv({ GNUPGHOME: key.home })
afterAll(() => {
  key.remove()
  out.remove()
})

const verify = (image: string) =>
  spawnSync('gpg', ['--batch', '--verify', `${image}.asc`, image], { env, encoding: 'utf8' })

describe('--sign', () => {
  it('writes an armoured detached signature that gpg verifies, and a tampered image fails', () => {
    const result = buildJson(
      ['thin', 'signed', 'hello', 'hello', '--out-dir', out.path, '--sign', '--key', fingerprint],
      {
        env,
      },
    )
    expect(result.signature).toBe(`${result.image}.asc`)
    expect(execFileSync('head', ['-1', result.signature!], { encoding: 'utf8' })).toBe(
      '-----BEGIN PGP SIGNATURE-----\n',
    )
    expect(verify(result.image).status).toBe(0)
    expect(result.rktCommand).not.toContain('--insecure-options')
    appendFileSync(result.image, 'tampered')
    const tampered = verify(result.image)
    expect(tampered.status).not.toBe(0)
    expect(tampered.stderr).toMatch(/BAD signature/)
  })

  it('drops a stale signature when the image is rebuilt unsigned', () => {
    buildJson(['thin', 'resigned', 'hello', 'hello', '--out-dir', out.path, '--sign'], { env })
    expect(existsSync(join(out.path, 'resigned.aci.asc'))).toBe(true)
    buildJson(['thin', 'resigned', 'hello', 'hello', '--out-dir', out.path], { env })
    expect(existsSync(join(out.path, 'resigned.aci.asc'))).toBe(false)
  })

  it('refuses an unknown key before any Nix work, and leaves nothing behind', () => {
    // The package does not exist either: the key is what is checked first.
    const args = ['thin', 'nokey', 'hello', 'no-such-package', '--out-dir', out.path, '--sign', '--quiet']
    const run = runCli([...args, '--key', 'nobody@nowhere.invalid'], { env })
    expect(run.status).toBe(1)
    expect(run.stderr.trim().split('\n')).toHaveLength(1)
    expect(run.stderr).toMatch(/--sign: gpg has no secret key nobody@nowhere.invalid/)
    expect(existsSync(join(out.path, 'nokey.aci'))).toBe(false)
    expect(existsSync(join(out.path, 'nokey.profile'))).toBe(false)
  })

  it('refuses to sign with the default key when the keyring has none', () => {
    const empty = makeTempDir('nix2aci-gnupg-')
    onTestFinished(() => empty.remove())
    const run = runCli(['thin', 'nokey', 'hello', 'no-such-package', '--out-dir', out.path, '--sign'], {
      env: { ...env, GNUPGHOME: empty.path },
    })
    expect(run.status).toBe(1)
    expect(run.stderr.trim().split('\n')).toHaveLength(1)
    expect(run.stderr).toMatch(/--sign: gpg has no secret key to sign with/)
  })
})
