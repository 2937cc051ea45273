// Starts a bundled command through V8's code cache, so a run does not compile the bundle again.
// Compiling yargs and the build code costs about 20 ms a run, as much as nix-env itself; with the
// cache a run deserializes the bytecode instead. Node 22 has this built in (module.enableCompileCache);
// Node 20, which Debian users have, does not.
//
// The cache lives in $XDG_CACHE_HOME/nix2aci (~/.cache/nix2aci), one file per command bundle, build
// and Node version. It is written at exit by the first successful run that did real work (not --help
// or --version), so it holds the functions that work needed. A missing, unwritable or stale cache only
// costs the compile time: V8 checks the data against its version and flags, and the file name carries
// a digest of the bundle for the source.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { homedir } from 'node:os'
import { basename, dirname, isAbsolute, join } from 'node:path'
import { Script } from 'node:vm'

/** Runs the CommonJS bundle `bundle`, built with content digest `digest`, as the main program. */
export function launch(bundle: string, digest: string): void {
  const source = readFileSync(bundle, 'utf8')
  const name = basename(bundle, '.js')
  const cacheDir = compileCacheDir()
  const cacheFile = join(cacheDir, `${name}-${digest}-node${process.version}-${process.arch}.v8`)
  const cachedData = readOrUndefined(cacheFile)
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

function readOrUndefined(file: string): Buffer | undefined {
  try {
    return readFileSync(file)
  } catch {
    return undefined
  }
}

/** A help or version run compiles little of the bundle: its cache would serve real runs poorly. */
function helpOrVersion(args: readonly string[]): boolean {
  return args.some((arg) => arg === '--help' || arg === '--version')
}

/** Writes the cache atomically and drops this bundle's caches of other builds or Node versions. */
function saveCache(script: Script, dir: string, file: string, bundlePrefix: string): void {
  try {
    mkdirSync(dir, { recursive: true })
    const temporary = `${file}.${process.pid}.tmp`
    writeFileSync(temporary, script.createCachedData())
    renameSync(temporary, file)
    for (const entry of readdirSync(dir)) {
      if (entry.startsWith(bundlePrefix) && entry !== basename(file)) rmSync(join(dir, entry), { force: true })
    }
  } catch {
    // An unwritable cache directory only means the next run compiles again.
  }
}
