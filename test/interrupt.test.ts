// Ctrl-C or SIGTERM in the middle of a build: nothing half-written stays behind, not even the
// output directory the build created.
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { fixtureEnv, makeTempDir, repoRoot, writeShellPackage } from './helpers/cli.js'

const dir = makeTempDir()
afterAll(() => dir.remove())

/**
 * Starts a thin build of a package that takes `seconds` to build (a fresh derivation each run, the
 * time is in its name, so Nix really has to build it), waits until nix-env is at work, and sends
 * `signal` to nix2aci alone or, as a terminal's Ctrl-C does, to its whole process group.
 */
async function interruptBuild(
  name: string,
  seconds: number,
  signal: NodeJS.Signals,
  target: 'process' | 'group',
  out = join(dir.path, `out-${name}`),
) {
  const slow = writeShellPackage(dir.path, name, `${name}-${Date.now()}`, `sleep ${seconds}; mkdir -p $out/bin`)
  const child = spawn(
    process.execPath,
    [join(repoRoot, 'dist/bin/nix2aci.js'), 'thin', name, 'x', name, '-f', slow, '--out-dir', out],
    { env: fixtureEnv(), detached: target === 'group', stdio: ['ignore', 'ignore', 'pipe'] },
  )
  const started = new Promise<void>((resolve) =>
    child.stderr.on('data', (chunk: Buffer) => chunk.toString().includes('Installing') && resolve()),
  )
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  await started
  await new Promise((resolve) => setTimeout(resolve, 500))
  if (target === 'group') process.kill(-child.pid!, signal)
  else child.kill(signal)
  return { exitCode: await exited, out }
}

describe('an interrupted build', () => {
  it('exits 130 and leaves no output directory behind', async () => {
    const { exitCode, out } = await interruptBuild('slow', 30, 'SIGINT', 'group')
    expect(exitCode).toBe(130)
    expect(existsSync(out)).toBe(false)
  })
})

describe('a build stopped by SIGTERM to nix2aci alone', () => {
  it('stops nix-env too, so nothing appears in the output directory afterwards', async () => {
    // An existing output directory, which a nix-env left running could still write its profile into.
    const out = join(dir.path, 'existing-out')
    mkdirSync(out)
    const { exitCode } = await interruptBuild('slow2', 3, 'SIGTERM', 'process', out)
    expect(exitCode).toBe(143)
    await new Promise((resolve) => setTimeout(resolve, 4_000)) // longer than the package takes to build
    expect(readdirSync(out)).toEqual([])
  })
})
