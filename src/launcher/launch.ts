// Starts a bundled command with its compiled code cached, so a run does not compile the bundle again.
// Compiling yargs and the build code costs about 20 ms a run, as much as nix-env itself. Node 22 and
// later cache compiled modules themselves (module.enableCompileCache): there the bundle is simply
// required with that cache on. Node 20, which Debian 12 users have, does not: there the launcher runs
// the bundle through V8's code cache itself (vm.Script with cachedData), and a run deserializes the
// bytecode instead of compiling.
//
// The cache lives in $XDG_CACHE_HOME/nix2aci (~/.cache/nix2aci). The vm path keeps one file per
// command bundle, build, Node version and architecture. The first successful run that is not help,
// --version or a completion writes it, at exit, with the functions that ran compiled. A missing,
// unwritable or stale cache only costs the compile time: V8 checks the data against its version and
// flags, and the file name carries a digest of the bundle for the source. V8 does not check where the
// data came from, though, so only a cache the current user owns is read, or written: under sudo, root
// never runs bytecode another user wrote. Node's own cache is used only in a directory of this user's.
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
import * as nodeModule from 'node:module'
import { homedir } from 'node:os'
import { basename, dirname, isAbsolute, join } from 'node:path'
import { Script } from 'node:vm'

/** Caches kept per bundle: one per install and Node version in use, without them evicting each other. */
const KEPT_CACHES = 4

/** Runs the CommonJS bundle `bundle`, built with content digest `digest`, as the main program. */
export function launch(bundle: string, digest: string): void {
  const cacheDir = compileCacheDir()
  const enableCompileCache = nodeCompileCache()
  if (enableCompileCache) {
    if (ownDirectory(cacheDir)) enableCompileCache(cacheDir)
    nodeModule.createRequire(bundle)(bundle)
    return
  }
  const source = readFileSync(bundle, 'utf8')
  const name = basename(bundle, '.js')
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
  run(module.exports, nodeModule.createRequire(bundle), module, bundle, dirname(bundle))
}

type EnableCompileCache = (directory: string) => unknown

/** Node's own compile cache (Node 22.1 and later), found by feature: absent on Node 20. */
function nodeCompileCache(): EnableCompileCache | undefined {
  const enable = (nodeModule as { enableCompileCache?: EnableCompileCache }).enableCompileCache
  return typeof enable === 'function' ? enable : undefined
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

/** A help, version or completion run compiles little of the bundle: its cache would serve real runs poorly. */
function helpOrVersion(args: readonly string[]): boolean {
  return (
    args[0] === 'help' ||
    args[0] === 'completion' ||
    args.some((arg) => ['--help', '-h', '--version', '--get-yargs-completions'].includes(arg))
  )
}

/**
 * Writes the cache atomically, into a directory of this user's only, and keeps the newest few of the
 * bundle's caches: other builds and Node versions go once they are no longer in use.
 */
function saveCache(script: Script, dir: string, file: string, bundlePrefix: string): void {
  try {
    if (!ownDirectory(dir)) return
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

/** Makes `dir` if need be (for this user only) and says whether this user owns it. */
function ownDirectory(dir: string): boolean {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    return statSync(dir).uid === process.geteuid?.()
  } catch {
    return false
  }
}
