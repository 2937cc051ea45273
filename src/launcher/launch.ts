// Starts a bundled command through V8's code cache, so a run does not compile the bundle again.
// Compiling yargs and the build code costs about 20 ms a run, as much as nix-env itself; with the
// cache a run deserializes the bytecode instead. Node 22 has this built in (module.enableCompileCache);
// Node 20, which Debian users have, does not.
//
// The cache lives in $XDG_CACHE_HOME/nix2aci (~/.cache/nix2aci), one file per command bundle, build,
// Node version and architecture. The first successful run that is not --help or --version writes it,
// at exit, with the functions that run compiled. A missing, unwritable or stale cache only costs the
// compile time: V8 checks the data against its version and flags, and the file name carries a digest
// of the bundle for the source. V8 does not check where the data came from, though, so only a cache
// the current user owns is read, or written: under sudo, root never runs bytecode another user wrote.
import {
  closeSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { createRequire } from 'node:module'
import { homedir } from 'node:os'
import { basename, dirname, isAbsolute, join } from 'node:path'
import { Script } from 'node:vm'

/** Caches kept per bundle: one per install and Node version in use, without them evicting each other. */
const KEPT_CACHES = 4

/** Runs the CommonJS bundle `bundle`, built with content digest `digest`, as the main program. */
export function launch(bundle: string, digest: string): void {
  const source = readFileSync(bundle, 'utf8')
  const name = basename(bundle, '.js')
  const cacheDir = compileCacheDir()
  const cacheFile = join(cacheDir, `${name}-${digest}-node${process.version}-${process.arch}.v8`)
  const cachedData = readOwnCache(cacheFile)
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundle,
    cachedData,
  })
  if ((cachedData === undefined || script.cachedDataRejected) && !helpOrVersion(process.argv.slice(2))) {
    process.once('exit', (code) => {
      if (code === 0) saveCache(script, cacheDir, cacheFile, `${name}-`)
    })
  }
  const module = { exports: {} }
  const run = script.runInThisContext() as (...args: unknown[]) => void
  run(module.exports, createRequire(bundle), module, bundle, dirname(bundle))
}

function compileCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache'), 'nix2aci')
}

/** The cache's bytes, if there is a cache and this user wrote it. */
function readOwnCache(file: string): Buffer | undefined {
  let fd: number | undefined
  try {
    fd = openSync(file, 'r')
    return fstatSync(fd).uid === process.geteuid?.() ? readFileSync(fd) : undefined
  } catch {
    return undefined
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/** A help or version run compiles little of the bundle: its cache would serve real runs poorly. */
function helpOrVersion(args: readonly string[]): boolean {
  return args.some((arg) => arg === '--help' || arg === '--version')
}

/**
 * Writes the cache atomically, into a directory of this user's only, and keeps the newest few of the
 * bundle's caches: other builds and Node versions go once they are no longer in use.
 */
function saveCache(script: Script, dir: string, file: string, bundlePrefix: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    if (statSync(dir).uid !== process.geteuid?.()) return
    const temporary = `${file}.${process.pid}.tmp`
    // `wx`: never through a link someone put in the way.
    writeFileSync(temporary, script.createCachedData(), { flag: 'wx', mode: 0o600 })
    renameSync(temporary, file)
    const caches = readdirSync(dir)
      .filter((entry) => entry.startsWith(bundlePrefix) && entry.endsWith('.v8'))
      .map((entry) => ({ path: join(dir, entry), written: statSync(join(dir, entry)).mtimeMs }))
      .sort((a, b) => b.written - a.written)
    for (const old of caches.slice(KEPT_CACHES)) rmSync(old.path, { force: true })
  } catch {
    // An unwritable cache directory only means the next run compiles again.
  }
}
