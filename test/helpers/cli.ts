// Running the built CLI the way a user does, against the bundled fixture package set.
import { execFileSync, spawnSync } from 'node:child_process'
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BuildResult } from '../../src/pipeline/build-image.js'

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url))
export const fixtures = join(repoRoot, 'fixtures')
/** Where test runs keep the CLI's compile cache, rather than in the developer's own ~/.cache. */
export const testCacheHome = join(repoRoot, '.test-roots', 'cache')

/** The environment the README asks for: the fixture set stands in for <nixpkgs>. */
export function fixtureEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, NIX_PATH: `nixpkgs=${fixtures}`, CI: 'true', XDG_CACHE_HOME: testCacheHome, ...extra }
}

export interface CliRun {
  status: number | null
  stdout: string
  stderr: string
}

/** Well under vitest's testTimeout (180 s), so a hung build fails its test with a reason. */
const CLI_TIMEOUT_MS = 150_000

export function runCli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; bin?: 'nix2aci' | 'buildThinACI' | 'buildFatACI' } = {},
): CliRun {
  const result = spawnSync(process.execPath, [join(repoRoot, 'dist/bin', `${options.bin ?? 'nix2aci'}.js`), ...args], {
    cwd: options.cwd ?? repoRoot,
    env: options.env ?? fixtureEnv(),
    encoding: 'utf8',
    // spawnSync blocks vitest's own timeout: a build stuck on a Nix lock must end here instead.
    timeout: CLI_TIMEOUT_MS,
  })
  if (result.error) throw result.error
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

/**
 * Runs the CLI on a pseudo-terminal (`script`), as a person at a terminal does: CI unset, and the
 * terminal `columns` wide, or reporting no width at all when `columns` is not given.
 */
export function runCliOnTerminal(args: string[], options: { env?: NodeJS.ProcessEnv; columns?: number } = {}): CliRun {
  const { CI: _ci, ...env } = options.env ?? fixtureEnv()
  const quote = (word: string) => `'${word.replaceAll("'", "'\\''")}'`
  const command = [process.execPath, join(repoRoot, 'dist/bin/nix2aci.js'), ...args].map(quote).join(' ')
  const size = options.columns === undefined ? '' : `stty cols ${options.columns} rows 30; `
  const result = spawnSync('script', ['-qec', size + command, '/dev/null'], { env, encoding: 'utf8', timeout: 60_000 })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

/** Mounts a tmpfs of `options` (`size=...`, `ro`) on the directory `dir`; false where this user cannot mount. */
export function mountTmpfs(dir: string, options: string): boolean {
  return spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]).status === 0
}

/** Runs a thin or fat build with --json and returns the parsed result, failing loudly otherwise. */
export function buildJson(args: string[], options: Parameters<typeof runCli>[1] = {}) {
  // --json first: anything after a `--` in args belongs to the app.
  const run = runCli(['--json', ...args], options)
  if (run.status !== 0) throw new Error(`build failed (${run.status}): ${run.stderr}`)
  return JSON.parse(run.stdout) as BuildResult
}

export function makeTempDir(prefix = 'nix2aci-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) }
}

/** Every file in a directory with its bytes, to show a failed build changed nothing. */
export function snapshotDir(dir: string): Record<string, string> {
  const snapshot: Record<string, string> = {}
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    snapshot[name] = lstatSync(path).isSymbolicLink()
      ? `-> ${readlinkSync(path)}`
      : readFileSync(path).toString('base64')
  }
  return snapshot
}

export function actoolValidate(image: string): CliRun {
  const result = spawnSync('actool', ['validate', image], { encoding: 'utf8' })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

/** The image ID appc defines: sha512 of the uncompressed tar, by `decompress` and sha512sum. */
export function imageIdOf(image: string, decompress = 'gzip -dc'): string {
  return `sha512-${execFileSync('sh', ['-c', `${decompress} '${image}' | sha512sum`], { encoding: 'utf8' }).split(' ')[0]}`
}

export function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status === 0
}

/**
 * $PATH as on a host without `command`: each directory holding it is replaced by one (made in
 * `scratch`) of links to everything else there, so Nix, tar and actool beside it stay found.
 */
export function pathWithout(command: string, scratch: string): string {
  return (process.env.PATH ?? '')
    .split(':')
    .map((dir, i) => {
      if (spawnSync('test', ['-x', join(dir, command)]).status !== 0) return dir
      const shadow = join(scratch, `path-without-${command}-${i}`)
      mkdirSync(shadow)
      for (const name of readdirSync(dir)) if (name !== command) symlinkSync(join(dir, name), join(shadow, name))
      return shadow
    })
    .join(':')
}

/** An image's manifest and its rootfs entries (name, type, mode, link target), read with tar. */
export function listImage(image: string): { manifest: unknown; entries: string[] } {
  const manifest = JSON.parse(execFileSync('tar', ['-xOf', image, 'manifest'], { encoding: 'utf8' })) as unknown
  const listing = execFileSync('tar', ['--numeric-owner', '-tvf', image], { encoding: 'utf8', maxBuffer: 1 << 28 })
  const entries = listing
    .trim()
    .split('\n')
    .map((line) => {
      // -rw-r--r-- 0/0 278 1970-01-01 00:00 name[ -> target]
      const [mode, owner, , , , ...rest] = line.split(/\s+/)
      return `${mode} ${owner} ${rest.join(' ')}`
    })
    .filter((entry) => !entry.endsWith(' manifest'))
    .sort()
  return { manifest, entries }
}

/**
 * Writes a Nix file holding one package, `attr`, built by a shell script (host tools on PATH), for
 * tests that need a package the fixture set does not have: a broken one, a slow one.
 */
export function writeShellPackage(dir: string, attr: string, name: string, script: string): string {
  const file = join(dir, `${attr}.nix`)
  writeFileSync(
    file,
    `{ ${attr} = derivation { name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh";
       PATH = "/usr/bin:/bin"; args = [ "-c" ${JSON.stringify(script)} ]; }; }`,
  )
  return file
}
