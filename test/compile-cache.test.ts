// The start-up cache (src/launcher/launch.ts): written by the first real run, used as it is by the
// next ones, and never a reason for a run to fail, whether missing, corrupt or unwritable.
import { chownSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import * as nodeModule from 'node:module'
import { basename, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { buildJson, fixtureEnv, makeTempDir, onPath, runCli, runCliOnTerminal } from './helpers/cli.js'

const cacheHome = makeTempDir()
const out = makeTempDir()
afterAll(() => {
  cacheHome.remove()
  out.remove()
})
const env = fixtureEnv({ XDG_CACHE_HOME: cacheHome.path })
const build = ['thin', 'cached', 'hello', 'hello', '--out-dir', out.path, '--engine', 'native']
const cacheDir = join(cacheHome.path, 'nix2aci')

function cacheFiles(): string[] {
  try {
    return readdirSync(cacheDir)
  } catch {
    return []
  }
}

/** The one cache file, written by a build first if there is none yet: for tests that start from a cache. */
function cacheAfterABuild(): string {
  if (cacheFiles().length === 0) buildJson(build, { env })
  const files = cacheFiles()
  expect(files).toHaveLength(1)
  return join(cacheDir, files[0]!)
}

describe('compile cache', () => {
  it('is not written by help, --version, a completion or a failed run', () => {
    rmSync(cacheDir, { recursive: true, force: true })
    expect(runCli(['--help'], { env }).status).toBe(0)
    expect(runCli(['thin', '-h'], { env }).status).toBe(0)
    expect(runCli(['help', 'fat'], { env }).status).toBe(0)
    expect(runCli(['thin', '--version'], { env }).status).toBe(0)
    expect(runCli(['completion'], { env }).status).toBe(0)
    expect(runCli(['--get-yargs-completions', 'nix2aci', 'th'], { env }).status).toBe(0)
    expect(runCli(['thin', 'Not A Name', 'hello', 'hello'], { env }).status).toBe(1)
    expect(cacheFiles()).toEqual([])
  })

  it('is written by the first build and used unchanged by the next', () => {
    rmSync(cacheDir, { recursive: true, force: true })
    const first = buildJson(build, { env })
    const files = cacheFiles()
    expect(files).toHaveLength(1)
    expect(files[0]).toMatch(/^nix2aci-[0-9a-f]{16}-nodev\d+\.\d+\.\d+-\w+\.v8$/)
    const written = statSync(join(cacheDir, files[0]!))
    expect(written.size).toBeGreaterThan(10_000)

    const second = buildJson(build, { env })
    expect(second.imageId).toBe(first.imageId)
    expect(statSync(join(cacheDir, files[0]!)).mtimeMs).toBe(written.mtimeMs)
  })

  it.skipIf(!onPath('script'))('serves a spinner run, which loads ora from cached code', () => {
    const cache = cacheAfterABuild()
    const written = statSync(cache).mtimeMs
    const run = runCliOnTerminal(build, { env, columns: 100 })
    expect(run.stdout).not.toContain('unexpected failure')
    expect(run.status).toBe(0)
    expect(run.stdout).toContain('✔')
    // Not rewritten: the launcher writes only a cache that was missing or that V8 rejected.
    expect(statSync(cache).mtimeMs).toBe(written)
  })

  it('replaces a corrupt cache instead of failing, and keeps only the newest caches of the bundle', () => {
    const cache = cacheAfterABuild()
    writeFileSync(cache, 'not V8 code cache data')
    // Caches of other builds or Node versions, written a day apart in 2020.
    const others = [1, 2, 3, 4, 5].map((day) => `nix2aci-${'0'.repeat(15)}${day}-nodev0.0.${day}-x64.v8`)
    others.forEach((other, i) => {
      writeFileSync(join(cacheDir, other), 'old')
      utimesSync(join(cacheDir, other), new Date(2020, 0, i + 1), new Date(2020, 0, i + 1))
    })
    const result = buildJson(build, { env })
    expect(result.image).toBe(join(out.path, 'cached.aci'))
    expect(readFileSync(cache).length).toBeGreaterThan(10_000)
    expect(cacheFiles().sort()).toEqual([...others.slice(2), basename(cache)].sort())
    others.slice(2).forEach((other) => rmSync(join(cacheDir, other)))
  })

  const isRoot = process.geteuid?.() === 0
  it.skipIf(!isRoot)('neither trusts a cache another user wrote nor writes into their directory', () => {
    const cache = cacheAfterABuild()
    chownSync(cache, 65534, 65534) // nobody's now: a cache root must not run
    buildJson(build, { env })
    expect(statSync(cache).uid).toBe(0) // not taken: rewritten by root

    rmSync(cache)
    chownSync(cacheDir, 65534, 65534)
    try {
      buildJson(build, { env })
      expect(cacheFiles()).toEqual([])
    } finally {
      chownSync(cacheDir, 0, 0)
    }
  })

  it('builds when the cache directory cannot be written', () => {
    const notADirectory = join(out.path, 'not-a-directory') // a file: nothing can be made below it
    writeFileSync(notADirectory, '')
    const run = runCli(['--json', ...build], { env: fixtureEnv({ XDG_CACHE_HOME: notADirectory }) })
    expect(run.stderr).toBe('')
    expect(run.status).toBe(0)
  })

  // Node 22.1 and later cache compiled modules themselves; this Node may not have that.
  const nodeHasCompileCache = typeof (nodeModule as { enableCompileCache?: unknown }).enableCompileCache === 'function'

  it('is left to Node where Node has module.enableCompileCache', () => {
    // On a Node without it, a stand-in put there before the launcher loads (a spy: it only notes
    // the call) shows the launcher picks Node's cache by the feature, not by a version number.
    const scratch = makeTempDir()
    try {
      const calls = join(scratch.path, 'calls')
      const spy = join(scratch.path, 'spy.cjs')
      writeFileSync(
        spy,
        `require('node:module').enableCompileCache = (dir) => { require('node:fs').appendFileSync(${JSON.stringify(calls)}, dir + '\\n') }\n`,
      )
      rmSync(cacheDir, { recursive: true, force: true })
      const result = buildJson(build, { env: { ...env, NODE_OPTIONS: `--require ${spy}` } })
      expect(result.image).toBe(join(out.path, 'cached.aci'))
      expect(readFileSync(calls, 'utf8')).toBe(`${cacheDir}\n`)
      expect(cacheFiles().filter((file) => file.endsWith('.v8'))).toEqual([])
    } finally {
      scratch.remove()
    }
  })

  it.skipIf(!nodeHasCompileCache)("writes Node's own cache, not the launcher's, on Node 22 and later", () => {
    rmSync(cacheDir, { recursive: true, force: true })
    buildJson(build, { env })
    const files = cacheFiles()
    expect(files.length).toBeGreaterThan(0)
    expect(files.filter((file) => file.endsWith('.v8'))).toEqual([])
  })
})
