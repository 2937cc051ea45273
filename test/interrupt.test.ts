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
