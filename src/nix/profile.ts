// The Nix side of a build: packages in, facts out (user environment, closure, exec path).
import { existsSync, readdirSync, readlinkSync } from 'node:fs'
import { readdir, realpath, rename, rm, stat, symlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { closurePathOf, type ImageFacts } from '../plan/plan.js'
import { UserError } from '../util/errors.js'
import { CommandError, errorLine, findOnPath, run } from '../util/exec.js'
import {
  closeMatches,
  looksLikeAttrPath,
  matchPackage,
  nixOptionArgs,
  parseAvailable,
  type AvailablePackage,
  type NixOptions,
} from './selectors.js'

export function requireNix(): void {
  if (!findOnPath('nix-env'))
    throw new UserError('Nix is not installed (nix-env is not on PATH); install it with: sudo apt-get install nix-bin')
}

/**
 * Nix's own error as nix-build shows it: its first `error:` line as the message, then what Nix
 * printed under it (a builder's last log lines, an evaluation error's position and source excerpt).
 */
export function nixError(what: string, error: unknown): UserError {
  if (!(error instanceof CommandError)) throw error
  const headline = errorLine(error.stderr)
  if (headline && PERMISSION_DENIED.test(headline) && process.getuid?.() !== 0) return notRootError(headline)
  if (!headline?.startsWith('error:'))
    return new UserError(`${what}: ${headline ?? `nix exited with ${error.exitCode}`}`)
  const message = headline.replace(/^error:\s*/, '').replace(/;$/, '')
  const failedBuild = /^builder for '([^']+)' failed/.exec(message)
  const subject = failedBuild
    ? `nix-env failed to build ${derivationFile(failedBuild[1]!).replace(/\.drv$/, '')}`
    : what
  const lines = error.stderr.split('\n')
  const details = lines
    .slice(lines.findIndex((line) => line.trim() === headline) + 1)
    .filter((line) => line.trim() !== '')
    // Nix indents what belongs to an error under its `error: ` prefix.
    .map((line) => line.replace(/^ {1,7}/, '').replace(NIX_LOG_HINT, "For full logs, run 'nix-store -l $1'."))
  return new UserError(`${subject}: ${message}`, 1, details)
}

// `nix log` needs the experimental nix-command feature; `nix-store -l` reads the same log everywhere.
const NIX_LOG_HINT = /For full logs, run 'nix log ([^']+)'\./

/** Nix's state directory (its database, locks, daemon socket) refused this user. */
const PERMISSION_DENIED = /\/nix\/var\/nix\b.*(Permission denied|Operation not permitted)/

/** Single-user Nix (local mode) is root's; another user needs root or the nix-daemon. */
function notRootError(nixSaid: string): UserError {
  return new UserError(
    `Nix's store here is root's and no nix-daemon serves uid ${process.getuid?.()}: run nix2aci as root (sudo), ` +
      'or use the nix-daemon (start it: sudo systemctl start nix-daemon.socket; join its group: sudo adduser $USER nix-users)',
    1,
    [`Nix said: ${nixSaid.replace(/^error:\s*/, '')}`],
  )
}

/** `hello-2.12.drv` for `/nix/store/<hash>-hello-2.12.drv`. */
function derivationFile(drvPath: string): string {
  return basename(drvPath).replace(/^[^-]*-/, '')
}

/** Where nix-env takes packages from (`-f`), with the options every evaluation gets. */
export interface NixSource {
  expression: string | undefined
  options: NixOptions
}

function expressionArgs({ expression, options }: NixSource): string[] {
  return [...(expression ? ['-f', expression] : []), ...nixOptionArgs(options)]
}

async function listAvailable(source: NixSource, signal: AbortSignal): Promise<AvailablePackage[]> {
  const { expression } = source
  try {
    const { stdout } = await run('nix-env', [...expressionArgs(source), '-qaP', '--json'], { signal })
    return parseAvailable(stdout)
  } catch (error) {
    throw nixError(`cannot list the packages of ${expression ?? '~/.nix-defexpr'}`, error)
  }
}

const MISSING_ATTRIBUTE = /attribute '[^']*' in selection path '([^']*)' not found/

/** What a caller sees of nix-env while it works. */
export interface NixWatch {
  /** nix-env started building a derivation, named by its file: `hello-2.12.drv`. */
  building?(derivation: string): void
  /** Every line Nix prints, builders' output included, as it comes (`--verbose`). */
  output?(line: string): void
}

/** What goes into a profile: packages of the expression, and store paths. */
export interface ProfileContents {
  /** Attribute paths and `nix-env -qa` names (`etcd`, `etcd-3.4.23`). */
  selectors: readonly string[]
  /** `-A`: attribute paths only, as nix-build takes them. */
  attrs: readonly string[]
  storePaths: readonly string[]
}

/**
 * Installs the packages into the profile at `profile` (`nix-env -p profile -i`), whose link then
 * leads to the new user environment. Attribute paths go straight to `nix-env -iA`; names and unknown
 * attributes are looked up in one `nix-env -qaP` listing only when that fails. nix-env starts
 * before this first yields, so a caller's synchronous work after the call overlaps with it.
 */
export async function installProfile(
  profile: string,
  { selectors, attrs, storePaths }: ProfileContents,
  source: NixSource,
  signal: AbortSignal,
  watch: NixWatch = {},
): Promise<void> {
  const missing = storePaths.find((path) => !existsSync(path))
  if (missing) throw new UserError(`no such store path: ${missing}`)
  const nixEnv = nixRunner('nix-env', watch, signal)
  // The first nix-env call replaces whatever the profile held (--remove-all), the second adds to it.
  const selecting = selectors.length > 0 || attrs.length > 0
  if (selecting) await installSelectors(nixEnv, profile, selectors, attrs, source, signal)
  if (storePaths.length > 0) {
    const replace = selecting ? [] : ['--remove-all']
    await nixEnv(['-p', profile, '-i', ...replace, ...storePaths]).catch((error) => {
      throw nixError('nix-env failed to install the store paths', error)
    })
  }
}

export type NixRun = (args: readonly string[]) => Promise<{ stdout: string; stderr: string }>

/**
 * A Nix command (nix-env, nix-store, nix) as the watcher wants it. Unwatched builders' output is
 * left out (`-Q`, `nix`'s default): Nix then puts a failed builder's last log lines into its error,
 * as nix-build shows them, and no log piles up here.
 */
export function nixRunner(command: 'nix-env' | 'nix-store' | 'nix', watch: NixWatch, signal: AbortSignal): NixRun {
  const onStderrLine = (line: string) => {
    watch.output?.(line)
    const building = /^building '([^']+\.drv)'/.exec(line)
    if (building) watch.building?.(derivationFile(building[1]!))
  }
  const quiet = watch.output || command === 'nix' ? [] : ['-Q']
  return (args) => run(command, [...quiet, ...args], { signal, onStderrLine })
}

async function installSelectors(
  nixEnv: NixRun,
  profile: string,
  selectors: readonly string[],
  attrs: readonly string[],
  source: NixSource,
  signal: AbortSignal,
) {
  if (selectors.every(looksLikeAttrPath)) {
    try {
      await installAttrs(nixEnv, profile, [...selectors, ...attrs], source)
      return
    } catch (error) {
      // An -A attribute is taken as given: its absence is Nix's error, not a name to look up.
      const missing = error instanceof CommandError ? MISSING_ATTRIBUTE.exec(error.stderr)?.[1] : undefined
      if (missing === undefined || (attrs.includes(missing) && !selectors.includes(missing)))
        throw nixError('nix-env failed to install the packages', error)
    }
  }
  const attrPaths = await resolveSelectors(selectors, source, signal)
  await installAttrs(nixEnv, profile, [...attrPaths, ...attrs], source).catch((error) => {
    throw nixError('nix-env failed to install the packages', error)
  })
}

function installAttrs(nixEnv: NixRun, profile: string, attrPaths: readonly string[], source: NixSource) {
  return nixEnv([...expressionArgs(source), '-p', profile, '--remove-all', '-iA', ...attrPaths])
}

async function resolveSelectors(
  selectors: readonly string[],
  source: NixSource,
  signal: AbortSignal,
): Promise<string[]> {
  const { expression } = source
  const available = await listAvailable(source, signal)
  return selectors.map((selector) => {
    const attrPath = matchPackage(selector, available)
    if (attrPath) return attrPath
    const close = closeMatches(selector, available)
    // `result`, nix-build's out-link, is a name to Nix too; a path needs a `/`.
    const hint = existsSync(selector)
      ? `; to take the file of that name here, give it as ./${selector}`
      : close.length > 0
        ? `; did you mean ${close.join(', ')}?`
        : ''
    throw new UserError(`unknown package '${selector}' in ${expression ?? '~/.nix-defexpr'}${hint}`)
  })
}

/**
 * Evaluates the expression once for many attribute paths (`nix-instantiate -A a -A b ...`) and returns
 * their store derivations in order, or undefined when any of them fails to evaluate.
 */
export async function instantiateAttrs(
  attrPaths: readonly string[],
  { expression, options }: NixSource,
  signal: AbortSignal,
): Promise<string[] | undefined> {
  if (attrPaths.length === 0) return []
  const file = expression ?? `${process.env.HOME ?? ''}/.nix-defexpr`
  const attrArgs = attrPaths.flatMap((attr) => ['-A', attr])
  try {
    const { stdout } = await run('nix-instantiate', [file, ...attrArgs, ...nixOptionArgs(options)], { signal })
    const drvs = stdout.split('\n').filter(Boolean)
    // `x.drv!bin` names one output of a multi-output package; nix-env would not install it as
    // `nix-env -iA` does (outputsToInstall), so such images resolve on their own.
    return drvs.length === attrPaths.length && drvs.every((drv) => drv.endsWith('.drv')) ? drvs : undefined
  } catch {
    signal.throwIfAborted()
    return undefined
  }
}

/** Every store path the given path needs at run time (`nix-store -qR`). */
export async function closureOf(storePath: string, signal: AbortSignal): Promise<string[]> {
  const { stdout } = await run('nix-store', ['-qR', storePath], { signal }).catch((error) => {
    throw nixError(`cannot query the closure of ${storePath}`, error)
  })
  return stdout.split('\n').filter(Boolean)
}

/**
 * The closure of `storePath` with each path's references, from one `nix-store -q --graph` (its
 * edges run from a reference to the path that refers to it, both by base name).
 */
export async function referenceGraphOf(
  storePath: string,
  storeDir: string,
  signal: AbortSignal,
): Promise<Map<string, string[]>> {
  const { stdout } = await run('nix-store', ['-q', '--graph', storePath], { signal }).catch((error) => {
    throw nixError(`cannot query the closure of ${storePath}`, error)
  })
  const references = new Map<string, string[]>()
  const at = (base: string) => `${storeDir}/${base}`
  for (const line of stdout.split('\n')) {
    const edge = /^"([^"]+)" -> "([^"]+)"/.exec(line)
    if (edge) {
      const referrer = at(edge[2]!)
      const known = references.get(referrer)
      if (known) known.push(at(edge[1]!))
      else references.set(referrer, [at(edge[1]!)])
      continue
    }
    const node = /^"([^"]+)" \[/.exec(line)
    if (node && !references.has(at(node[1]!))) references.set(at(node[1]!), [])
  }
  return references
}

/** The top-level entries of a user environment (`bin`, `share`, ...), without nix-env's manifest. */
export async function topLevelEntries(userEnvironment: string): Promise<string[]> {
  const entries = await readdir(userEnvironment)
  return entries.filter((entry) => entry !== 'manifest.nix').sort()
}

/**
 * The path of `binary` in the user environment: `bin/<binary>` or `sbin/<binary>`, or, for a
 * value with a `/`, that path inside the profile.
 */
export async function findExecutable(userEnvironment: string, binary: string): Promise<string> {
  const candidates = binary.includes('/')
    ? [join(userEnvironment, binary.replace(/^\/+/, ''))]
    : ['bin', 'sbin'].map((dir) => join(userEnvironment, dir, binary))
  for (const candidate of candidates) {
    if (await isExecutableFile(candidate)) return candidate
  }
  const present = await listExecutables(userEnvironment)
  const there = present.length > 0 ? `executables there: ${present.join(', ')}` : 'the packages have no bin/ or sbin/'
  throw new UserError(`binary '${binary}' is not in the packages' bin/ or sbin/; ${there}`)
}

/**
 * An absolute program path the user gave (`/bin/sh`, `/nix/store/...-busybox/bin/sh`), checked to be
 * an executable the image carries: in its closure, reached through the rootfs links, and still
 * there once the host's symbolic links are followed.
 */
export async function checkProgramInImage(facts: ImageFacts, program: string): Promise<void> {
  const storePath = closurePathOf(facts, program)
  const real = storePath === undefined ? undefined : await realpath(storePath).catch(() => undefined)
  if (real !== undefined && closurePathOf(facts, real) === real && (await isExecutableFile(real))) return
  throw new UserError(
    `program '${program}' is not in the image: an absolute path must name an executable in the packages' closure ` +
      `(${facts.storeDir}/...) or reached through the profile's links (/bin/...)`,
  )
}

async function isExecutableFile(path: string): Promise<boolean> {
  const info = await stat(path).catch(() => undefined)
  return info !== undefined && info.isFile() && (info.mode & 0o111) !== 0
}

async function listExecutables(userEnvironment: string): Promise<string[]> {
  const found: string[] = []
  for (const dir of ['bin', 'sbin']) {
    const names = await readdir(join(userEnvironment, dir)).catch(() => [] as string[])
    for (const name of names) if (await isExecutableFile(join(userEnvironment, dir, name))) found.push(`${dir}/${name}`)
  }
  return found.sort()
}

/**
 * A profile's generations as they are on disk: `P -> P-N-link -> /nix/store/...`. nix-env registers
 * every generation link as a GC root, so the profile beside an image keeps the image's closure alive.
 */
export interface ProfileState {
  current: string | undefined
  generations: string[]
}

/** Synchronous: a build reads the state it may have to restore before nix-env starts changing it. */
export function profileState(profile: string): ProfileState {
  const dir = dirname(profile)
  const prefix = `${basename(profile)}-`
  return {
    current: readOrUndefined(() => readlinkSync(profile)),
    generations: (readOrUndefined(() => readdirSync(dir)) ?? []).filter(
      (name) => name.startsWith(prefix) && /^\d+-link$/.test(name.slice(prefix.length)),
    ),
  }
}

function readOrUndefined<T>(read: () => T): T | undefined {
  try {
    return read()
  } catch {
    return undefined
  }
}

/** Puts a profile back as it was before a failed build: its old generation current, new ones gone. */
export async function restoreProfile(profile: string, before: ProfileState): Promise<void> {
  if (before.current) await replaceSymlink(before.current, profile)
  else await rm(profile, { force: true })
  const { generations } = profileState(profile)
  await removeGenerations(
    profile,
    generations.filter((name) => !before.generations.includes(name)),
  )
}

/** Drops every generation but the current one, so older closures can be collected. */
export async function pruneProfile(profile: string): Promise<void> {
  const { current, generations } = profileState(profile)
  await removeGenerations(
    profile,
    generations.filter((name) => name !== current),
  )
}

/** Removes a profile and all its generations. */
export async function removeProfile(profile: string): Promise<void> {
  await rm(profile, { force: true })
  await removeGenerations(profile, profileState(profile).generations)
}

/** Removes the named generation links that sit beside `profile`. */
async function removeGenerations(profile: string, names: readonly string[]): Promise<void> {
  await Promise.all(names.map((name) => rm(join(dirname(profile), name), { force: true })))
}

async function replaceSymlink(target: string, link: string): Promise<void> {
  const temporary = `${link}.${process.pid}.tmp`
  await symlink(target, temporary)
  await rename(temporary, link)
}
