// Ctrl-C in the middle of a build: nothing half-written stays behind.
import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { fixtureEnv, makeTempDir, repoRoot, writeShellPackage } from './helpers/cli.js'

const dir = makeTempDir()
afterAll(() => dir.remove())

describe('an interrupted build', () => {
  it('exits 130 and leaves the output directory as it was', async () => {
    // A fresh derivation each run (the time is in its name), so Nix really has to build it.
    const slow = writeShellPackage(dir.path, 'slow', `slow-${Date.now()}`, 'sleep 30; mkdir -p $out/bin')
    const out = join(dir.path, 'out')
    const child = spawn(
      process.execPath,
      [join(repoRoot, 'dist/bin/nix2aci.js'), 'thin', 'slow', 'x', 'slow', '-f', slow, '--out-dir', out],
      { env: fixtureEnv(), detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
    )
    let stderr = ''
    const started = new Promise<void>((resolve) =>
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString()
        if (stderr.includes('Installing')) resolve()
      }),
    )
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
    await started
    await new Promise((resolve) => setTimeout(resolve, 500))
    process.kill(-child.pid!, 'SIGINT') // the whole process group, as a terminal's Ctrl-C does
    expect(await exited).toBe(130)
    expect(readdirSync(out)).toEqual([])
  })
})

describe('a build stopped by SIGTERM to nix2aci alone', () => {
  it('stops nix-env too, so nothing appears in the output directory afterwards', async () => {
    const slow = writeShellPackage(dir.path, 'slow2', `slow2-${Date.now()}`, 'sleep 3; mkdir -p $out/bin')
    const out = join(dir.path, 'out2')
    const child = spawn(
      process.execPath,
      [join(repoRoot, 'dist/bin/nix2aci.js'), 'thin', 'slow2', 'x', 'slow2', '-f', slow, '--out-dir', out],
      { env: fixtureEnv(), stdio: ['ignore', 'ignore', 'pipe'] },
    )
    const started = new Promise<void>((resolve) => child.stderr.on('data', () => resolve()))
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
    await started
    await new Promise((resolve) => setTimeout(resolve, 500))
    child.kill('SIGTERM') // only the node process: its nix-env must not outlive it
    expect(await exited).toBe(143)
    await new Promise((resolve) => setTimeout(resolve, 4_000)) // longer than the package takes to build
    expect(readdirSync(out)).toEqual([])
  })
})
