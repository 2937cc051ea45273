// The fixture flake (fixtures/flake.nix): Nix's flake commands build the fixture packages offline,
// the same packages nix-build builds, without writing a lock file into the checkout.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { closureOf, nixBuild, nixHasFlakes, runInClosure } from './helpers/closure.js'
import { fixtures, makeTempDir } from './helpers/cli.js'

// Flakes came in Nix 2.4, behind these experimental features until they are stable.
const flakeFeatures = ['--extra-experimental-features', 'nix-command flakes']

const roots = makeTempDir('nix2aci-flake-')
afterAll(() => roots.remove())
let builds = 0

/**
 * `nix build --json` of one flake reference: its output's store path and its derivation. The
 * out-link is a GC root, so a garbage collection running meanwhile keeps what the test looks at.
 */
function flakeBuild(ref: string, options: { args?: string[]; cwd?: string } = {}): { out: string; drvPath: string } {
  const outLink = join(roots.path, `result-${++builds}`)
  const stdout = execFileSync(
    'nix',
    [...flakeFeatures, 'build', '--out-link', outLink, '--json', ...(options.args ?? []), ref],
    {
      encoding: 'utf8',
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const [built] = JSON.parse(stdout) as { drvPath: string; outputs: { out: string } }[]
  return { out: built!.outputs.out, drvPath: built!.drvPath }
}

/** The derivation's environment as `nix show-derivation` prints it. */
function derivationEnv(drvPath: string): Record<string, string> {
  const shown = JSON.parse(
    execFileSync('nix', [...flakeFeatures, 'show-derivation', drvPath], { encoding: 'utf8' }),
  ) as Record<string, { env: Record<string, string> }>
  return shown[drvPath]!.env
}

describe.skipIf(!nixHasFlakes)('fixture flake (needs Nix 2.4 or later)', () => {
  it('builds hello from path:fixtures#hello, and the program runs in its closure', () => {
    const { out } = flakeBuild(`path:${fixtures}#hello`)
    const run = runInClosure(closureOf(out), [`${out}/bin/hello`])
    expect(run.stdout).toBe('Hello, world!\n')
    expect(run.status).toBe(0)
  })

  it("is nix-build's hello when evaluated with --impure", () => {
    expect(flakeBuild(`path:${fixtures}#hello`, { args: ['--impure'] }).out).toBe(nixBuild(['hello'])[0])
  })

  // Pure evaluation cannot read dpkg's file lists, the one input that differs.
  it('says its packages are unstamped when evaluated purely, so they are not the nix-build ones', () => {
    const pure = flakeBuild(`path:${fixtures}#hello`)
    expect(pure.out).not.toBe(nixBuild(['hello'])[0])
    expect(derivationEnv(pure.drvPath).debianStamp).toBe('unstamped (pure evaluation cannot read /var/lib/dpkg)')
  })

  it('builds .#hello from inside fixtures/ as path:fixtures#hello, and leaves no flake.lock', () => {
    expect(flakeBuild('.#hello', { cwd: fixtures }).out).toBe(flakeBuild(`path:${fixtures}#hello`).out)
    expect(existsSync(join(fixtures, 'flake.lock'))).toBe(false)
  })
})
