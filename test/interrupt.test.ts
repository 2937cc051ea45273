// Ctrl-C or SIGTERM in the middle of a build: nothing half-written stays behind, not even the
// output directory the build created.
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { fixtureEnv, fixtures, makeTempDir, onPath, repoRoot, writeShellPackage } from './helpers/cli.js'
import { hasExited, liveProcesses } from './helpers/proc.js'

const dir = makeTempDir()
afterAll(() => dir.remove())

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A running nix-env whose parent is `parent`. */
function nixEnvChildOf(parent: number): number | undefined {
  return liveProcesses().find((p) => p.command === 'nix-env' && p.parent === parent)?.pid
}

/** Polls every 50 ms until `found` gives a value, or fails with `what` after `timeoutMs`. */
async function pollFor<T>(what: string, timeoutMs: number, found: () => T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = found()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`)
    await sleep(50)
  }
}

/**
 * Starts a thin build of a package that takes `seconds` to build (a fresh derivation each run, the
 * time is in its name, so Nix really has to build it), waits until nix2aci's own nix-env is at
 * work, and sends `signal` to nix2aci alone or, as a terminal's Ctrl-C does, to its whole process
 * group. Returns the exit code and the nix-env's pid.
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
  let stderr = ''
  let exitedEarly: number | null | undefined
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  void exited.then((code) => (exitedEarly = code))
  await new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
      if (stderr.includes('Installing')) resolve()
    })
    void exited.then((code) => reject(new Error(`nix2aci exited (${code}) before installing:\n${stderr}`)))
  })
  const nixEnv = await pollFor('no nix-env child of nix2aci', 10_000, () => {
    if (exitedEarly !== undefined) throw new Error(`nix2aci exited (${exitedEarly}) before nix-env ran:\n${stderr}`)
    return nixEnvChildOf(child.pid!)
  })
  if (target === 'group') process.kill(-child.pid!, signal)
  else child.kill(signal)
  return { exitCode: await exited, out, nixEnv }
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
    const { exitCode, nixEnv } = await interruptBuild('slow2', 3, 'SIGTERM', 'process', out)
    const exitedAt = Date.now()
    expect(exitCode).toBe(143)
    await pollFor(`nix-env (pid ${nixEnv}) still running`, 10_000, () => (hasExited(nixEnv) ? true : undefined))
    // Longer than the package's 3 s build: a nix-env that had escaped would have written by now.
    await sleep(Math.max(0, exitedAt + 4_000 - Date.now()))
    expect(readdirSync(out)).toEqual([])
  })
})

/** A live process whose command line holds every one of `words`. */
function processWith(words: string[]): number | undefined {
  return liveProcesses().find((p) => words.every((word) => p.argv.some((arg) => arg.includes(word))))?.pid
}

describe.skipIf(!onPath('acbuild'))('a fat build with acbuild stopped by SIGTERM', () => {
  it('stops acbuild before nix2aci exits, so nothing writes on under a removed staging directory', async () => {
    const out = join(dir.path, 'acbuild-out')
    const child = spawn(
      process.execPath,
      [
        join(repoRoot, 'dist/bin/nix2aci.js'),
        'fat',
        'py',
        'python3',
        'python3',
        '--out-dir',
        out,
        '--engine',
        'acbuild',
      ],
      { env: fixtureEnv({ NIX_PATH: `nixpkgs=${fixtures}` }), stdio: 'ignore' },
    )
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
    try {
      // Copying python3's closure into the image takes acbuild a while: long enough to catch it at it.
      const acbuild = await pollFor('no acbuild copy-to-dir', 60_000, () => processWith(['copy-to-dir', out]))
      child.kill('SIGTERM')
      expect(await exited).toBe(143)
      expect(hasExited(acbuild), `acbuild (pid ${acbuild}) outlived nix2aci`).toBe(true)
      expect(existsSync(out)).toBe(false)
    } finally {
      child.kill('SIGKILL')
    }
  })
})
