// Ctrl-C or SIGTERM in the middle of a build: nothing half-written stays behind, not even the
// output directory the build created.
import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { buildJson, fixtureEnv, makeTempDir, onPath, repoRoot, snapshotDir, writeShellPackage } from './helpers/cli.js'
import { childrenRunning, commandLine, hasExited, liveProcesses } from './helpers/proc.js'
import { startOnTerminal } from './helpers/terminal.js'
import { pollFor, sleep } from './helpers/wait.js'

const dir = makeTempDir()
afterAll(() => dir.remove())

/** A fresh derivation (the time is in its name, so Nix really builds it) that takes `seconds`. */
function slowPackage(attr: string, seconds: number): string {
  return writeShellPackage(dir.path, attr, `${attr}-${Date.now()}`, `sleep ${seconds}; mkdir -p $out/bin`)
}

/**
 * Runs nix2aci with `args`, waits until `nixEnvs` of its own nix-env children are at work, and sends
 * `signal` to nix2aci alone or, as a terminal's Ctrl-C does, to its whole process group; with
 * `repeat`, again every millisecond until nix2aci exits (a user who keeps pressing Ctrl-C, at every moment of the cleanup). Returns the
 * exit code (null when a signal killed nix2aci) and the nix-envs' pids.
 */
async function interruptCli(
  args: string[],
  signal: NodeJS.Signals,
  target: 'process' | 'group',
  { nixEnvs = 1, repeat = false } = {},
) {
  const child = spawn(process.execPath, [join(repoRoot, 'dist/bin/nix2aci.js'), ...args], {
    env: fixtureEnv(),
    detached: target === 'group',
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  let exitedEarly: number | null | undefined
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  void exited.then((code) => (exitedEarly = code))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const running = await pollFor(`not ${nixEnvs} nix-env children of nix2aci`, 20_000, () => {
    if (exitedEarly !== undefined) throw new Error(`nix2aci exited (${exitedEarly}) before nix-env ran:\n${stderr}`)
    const pids = childrenRunning(child.pid!, 'nix-env')
    return pids.length >= nixEnvs ? pids : undefined
  })
  const send = () => (target === 'group' ? process.kill(-child.pid!, signal) : child.kill(signal))
  send()
  if (repeat) {
    const again = setInterval(() => {
      try {
        send()
      } catch {
        // the group is gone: nix2aci has exited, its 'close' is on its way
      }
    }, 1)
    void exited.finally(() => clearInterval(again))
  }
  return { exitCode: await exited, nixEnvs: running }
}

/** A thin build of a package that takes `seconds` to build, interrupted while nix-env builds it. */
async function interruptBuild(
  name: string,
  seconds: number,
  signal: NodeJS.Signals,
  target: 'process' | 'group',
  { out = join(dir.path, `out-${name}`), repeat = false } = {},
) {
  const args = ['thin', name, 'x', name, '-f', slowPackage(name, seconds), '--out-dir', out]
  const { exitCode, nixEnvs } = await interruptCli(args, signal, target, { repeat })
  return { exitCode, out, nixEnv: nixEnvs[0]! }
}

/** An out-dir holding a thin image named `name` of a quick package, to show an interrupt leaves it as it was. */
function outDirWithImage(name: string): string {
  const out = join(dir.path, `out-${name}`)
  const quick = writeShellPackage(dir.path, `quick-${name}`, 'quick', 'mkdir -p $out/bin; cp /bin/true $out/bin/x')
  buildJson(['thin', name, 'x', `quick-${name}`, '-f', quick, '--out-dir', out])
  return out
}

describe('an interrupted build', () => {
  it('exits 130 and leaves no output directory behind', async () => {
    const { exitCode, out } = await interruptBuild('slow', 30, 'SIGINT', 'group')
    expect(exitCode).toBe(130)
    expect(existsSync(out)).toBe(false)
  })

  it('exits 129 on SIGHUP (a closed terminal or ssh session) and leaves no output directory behind', async () => {
    const { exitCode, out } = await interruptBuild('hangup', 30, 'SIGHUP', 'process')
    expect(exitCode).toBe(129)
    expect(existsSync(out)).toBe(false)
  })

  it('finishes its cleanup however often Ctrl-C is pressed again, and leaves the out-dir as it was', async () => {
    const out = outDirWithImage('again')
    const before = snapshotDir(out)
    const { exitCode } = await interruptBuild('again', 30, 'SIGINT', 'group', { out, repeat: true })
    expect(exitCode).toBe(130)
    expect(snapshotDir(out)).toEqual(before)
  })
})

/** The last lines a terminal showed, without the spinner's redraws and colours. */
function lastLines(screen: string): string {
  return screen
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    .split(/[\r\n]+/)
    .slice(-5)
    .join('\n')
}

describe.skipIf(!onPath('python3'))('Ctrl-C on a terminal while the spinner runs', () => {
  it('stops the build with 130 and leaves the output directory as it was', async () => {
    const out = outDirWithImage('term')
    const before = snapshotDir(out)
    const args = ['thin', 'term', 'x', 'term', '-f', slowPackage('term', 30), '--out-dir', out]
    const terminal = await startOnTerminal(args)
    await pollFor('no spinner while nix-env runs', 20_000, () =>
      childrenRunning(terminal.pid, 'nix-env').length > 0 && terminal.screen().includes('Installing term')
        ? true
        : undefined,
    )
    terminal.type('\x03')
    const { code, screen } = await terminal.exited
    expect(code, lastLines(screen)).toBe(130)
    expect(snapshotDir(out)).toEqual(before)
  })

  it('stops the build when the terminal closes (SIGHUP) and leaves the output directory as it was', async () => {
    const out = outDirWithImage('hungup')
    const before = snapshotDir(out)
    const args = ['thin', 'hungup', 'x', 'hungup', '-f', slowPackage('hungup', 30), '--out-dir', out]
    const terminal = await startOnTerminal(args)
    await pollFor('no spinner while nix-env runs', 20_000, () =>
      childrenRunning(terminal.pid, 'nix-env').length > 0 && terminal.screen().includes('Installing hungup')
        ? true
        : undefined,
    )
    terminal.close()
    // Nothing reports an exit code once the terminal is gone: that nix2aci ends, and what it left, tell.
    await pollFor(`nix2aci (pid ${terminal.pid}) still running`, 20_000, () =>
      hasExited(terminal.pid) ? true : undefined,
    )
    expect(snapshotDir(out)).toEqual(before)
  })
})

describe('a build interrupted while it writes the image', () => {
  it('stops the compressor and the stream, exits 130 and leaves no output directory behind', async () => {
    const out = join(dir.path, 'writing-out')
    const args = ['fat', 'writing', 'python3', 'python3', '--compression', 'xz', '--engine', 'native', '--out-dir', out]
    const child = spawn(process.execPath, [join(repoRoot, 'dist/bin/nix2aci.js'), ...args], {
      env: fixtureEnv(),
      detached: true,
      stdio: 'ignore',
    })
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
    try {
      // xz runs only while the image's tar streams through it.
      const xz = await pollFor(
        'no xz child of nix2aci',
        60_000,
        () => liveProcesses().find((p) => p.parent === child.pid && p.command === 'xz')?.pid,
      )
      process.kill(-child.pid!, 'SIGINT')
      expect(await exited).toBe(130)
      expect(hasExited(xz), `xz (pid ${xz}) outlived nix2aci`).toBe(true)
      expect(existsSync(out)).toBe(false)
    } finally {
      child.kill('SIGKILL')
    }
  })
})

describe('an interrupted spec build with more images than run at once', () => {
  it('starts no further image, so nothing is left behind and no nix-env writes on', async () => {
    const out = join(dir.path, 'spec-out')
    const atOnce = availableParallelism()
    const images = Array.from({ length: atOnce + 2 }, (_, i) => {
      const attr = `queued${i}`
      return { name: attr, binary: 'x', packages: [attr], file: slowPackage(attr, 3) }
    })
    const spec = join(dir.path, 'queued.json')
    writeFileSync(spec, JSON.stringify({ outDir: out, images }))
    const { exitCode } = await interruptCli(['build', '-c', spec], 'SIGINT', 'group', { nixEnvs: atOnce })
    expect(exitCode).toBe(130)
    expect(existsSync(out)).toBe(false)
    // Only a nix-env writes into `out` once nix2aci is gone, and none is left that names it.
    expect(liveProcesses().filter((p) => commandLine(p.pid).some((arg) => arg.startsWith(out)))).toEqual([])
  })
})

describe('a build stopped by SIGTERM to nix2aci alone', () => {
  it('stops nix-env too, so nothing appears in the output directory afterwards', async () => {
    // An existing output directory, which a nix-env left running could still write its profile into.
    const out = join(dir.path, 'existing-out')
    mkdirSync(out)
    const { exitCode, nixEnv } = await interruptBuild('slow2', 3, 'SIGTERM', 'process', { out })
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
  return liveProcesses().find((p) => words.every((word) => commandLine(p.pid).some((arg) => arg.includes(word))))?.pid
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
      { env: fixtureEnv(), stdio: 'ignore' },
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

describe('a program that ignores SIGTERM', () => {
  it('gets SIGKILL after a while, so a stopped nix2aci still exits (143) and leaves it not running', async () => {
    const image = join(outDirWithImage('stubborn'), 'stubborn.aci')
    // rkt is in no registry here: a stand-in that ignores SIGTERM (an ignored signal stays so across exec).
    const standIn = join(dir.path, 'stubborn-bin')
    mkdirSync(standIn)
    writeFileSync(join(standIn, 'rkt'), "#!/bin/sh\ntrap '' TERM\nexec sleep 120\n")
    chmodSync(join(standIn, 'rkt'), 0o755)
    const child = spawn(process.execPath, [join(repoRoot, 'dist/bin/nix2aci.js'), 'run', image], {
      env: fixtureEnv({ PATH: `${standIn}:${process.env.PATH}` }),
      stdio: 'ignore',
    })
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
    try {
      const rkt = await pollFor(
        'no rkt stand-in running',
        20_000,
        () => liveProcesses().find((p) => p.parent === child.pid && p.command === 'sleep')?.pid,
      )
      child.kill('SIGTERM')
      expect(await exited).toBe(143)
      expect(hasExited(rkt), `the rkt stand-in (pid ${rkt}) outlived nix2aci`).toBe(true)
    } finally {
      child.kill('SIGKILL')
    }
  })
})
