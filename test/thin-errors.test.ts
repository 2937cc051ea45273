// Bad input: one clear line on stderr, a non-zero exit, and the output directory as it was.
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildJson,
  fixtureEnv,
  makeTempDir,
  pathWithout,
  runCli,
  snapshotDir,
  writeShellPackage,
  type CliRun,
} from './helpers/cli.js'

const out = makeTempDir()
let before: Record<string, string>
beforeAll(() => {
  // An earlier image of the same name, which no failed build may touch.
  buildJson(['thin', 'app', 'hello', 'hello', '--out-dir', out.path, '--engine', 'native'])
  before = snapshotDir(out.path)
})
afterAll(() => out.remove())

function expectCleanFailure(run: CliRun, message: RegExp) {
  expect(run.status).not.toBe(0)
  expect(run.stderr.trim().split('\n')).toHaveLength(1)
  expect(run.stderr).toMatch(message)
  expect(snapshotDir(out.path)).toEqual(before)
}

const thin = (...args: string[]) => runCli(['thin', ...args, '--out-dir', out.path, '--engine', 'native', '--quiet'])

describe('bad input to nix2aci thin', () => {
  it('names close matches for an unknown package', () => {
    expectCleanFailure(thin('app', 'etcd', 'etdc'), /unknown package 'etdc'.*did you mean etcd \(etcd-/)
  })

  it('lists the executables there when the binary is in no package', () => {
    expectCleanFailure(
      thin('app', 'nosuchbinary', 'hello'),
      /binary 'nosuchbinary' is not in .*executables there: bin\/hello/,
    )
  })

  it('refuses an invalid image name before any Nix work, saying the rule', () => {
    const run = runCli(['thin', 'My_App', 'hello', 'hello', '--out-dir', out.path], {
      env: fixtureEnv({ PATH: '/nonexistent' }),
    })
    expect(run.status).toBe(1)
    expect(run.stderr).toMatch(/invalid image name 'My_App': ACIdentifier must contain only lower case/)
  })

  it("shows Nix's own message when a package fails to build", () => {
    const dir = makeTempDir()
    try {
      const broken = writeShellPackage(dir.path, 'broken', 'broken-1.0', 'echo compiling; exit 3')
      expectCleanFailure(
        thin('app', 'x', 'broken', '-f', broken),
        /builder for '.*broken-1\.0\.drv' failed with exit code 3/,
      )
    } finally {
      dir.remove()
    }
  })

  it('says when Nix is not installed', () => {
    const run = runCli(['thin', 'app', 'hello', 'hello', '--out-dir', out.path], {
      env: fixtureEnv({ PATH: '/nonexistent' }),
    })
    expect(run.status).toBe(1)
    expect(run.stderr.trim()).toMatch(/^nix2aci: Nix is not installed .*apt-get install nix-bin$/)
  })

  it('refuses --engine acbuild when acbuild is not installed', () => {
    const scratch = makeTempDir()
    try {
      const run = runCli(['thin', 'app', 'hello', 'hello', '--out-dir', out.path, '--engine', 'acbuild'], {
        env: fixtureEnv({ PATH: pathWithout('acbuild', scratch.path) }),
      })
      expectCleanFailure(run, /acbuild is not installed/)
    } finally {
      scratch.remove()
    }
  })

  it('refuses an output directory it cannot write', () => {
    const dir = makeTempDir()
    const readOnly = join(dir.path, 'ro')
    mkdirSync(readOnly)
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', readOnly]).status === 0
    try {
      // Root writes through permission bits, so only a read-only mount (or a file) really refuses.
      const target = mounted ? readOnly : join(out.path, 'app.aci')
      const run = runCli(['thin', 'app', 'hello', 'hello', '--out-dir', target, '--quiet'])
      expectCleanFailure(run, /cannot write to the output directory/)
      if (mounted) expect(readdirSync(readOnly)).toEqual([])
    } finally {
      if (mounted) execFileSync('umount', [readOnly])
      dir.remove()
    }
  })

  it('takes away the output directory it made for a build that failed', () => {
    const dir = makeTempDir()
    try {
      const run = runCli(['thin', 'app', 'nothere', 'hello', '--out-dir', join(dir.path, 'new', 'ACIs'), '--quiet'])
      expect(run.status).toBe(1)
      expect(run.stderr).toMatch(/binary 'nothere' is not in the packages/)
      expect(readdirSync(dir.path)).toEqual([])
    } finally {
      dir.remove()
    }
  })

  it('answers an unknown flag or command with a usage error, not a stack trace', () => {
    const flag = runCli(['thin', 'app', 'hello', 'hello', '--frobnicate'])
    expect(flag.status).toBe(1)
    expect(flag.stderr).toMatch(/Unknown argument: frobnicate/)
    expect(flag.stderr).not.toMatch(/\bat .*\.js:\d+/)
    const choice = runCli(['thin', 'app', 'hello', 'hello', '--engine', 'fast'])
    expect(choice.status).toBe(1)
    expect(choice.stderr).toMatch(/^nix2aci: Invalid values: Argument: engine, Given: "fast", Choices: .*\n$/)
    const command = runCli(['frob'])
    expect(command.status).toBe(1)
    expect(command.stderr).toMatch(/Unknown argument: frob/)
  })

  it('prints the usage of the legacy script for fewer than three arguments', () => {
    // An option's value is not one of the three: `--out-dir DIR app hello` still lacks a package.
    for (const args of [[], ['app', 'hello'], ['--out-dir', out.path, 'app', 'hello']]) {
      const run = runCli(args, { bin: 'buildThinACI' })
      expect(run.status).toBe(1)
      expect(run.stderr.trim()).toBe('Usage: buildThinACI name binary-name package1 [package2 ...]')
    }
  })
})
