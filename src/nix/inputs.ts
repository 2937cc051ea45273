// The packages of an image as Nix users name them, made into what a profile installs: attribute
// paths and names (positional, `-A`), `-E` expressions, flake references, `.drv` files, out-links.
import { lstatSync, readlinkSync, realpathSync } from 'node:fs'
import { basename, dirname, resolve } from 'node:path'
import { UserError } from '../util/errors.js'
import { CommandError, errorLine, run } from '../util/exec.js'
import { installProfile, nixError, nixRunner, type NixSource, type NixWatch } from './profile.js'
import {
  NO_NIX_OPTIONS,
  STORE_DIR,
  isDerivation,
  isFilePath,
  isFlakeRef,
  isStorePath,
  nixOptionArgs,
  topStorePath,
  type NixOptions,
} from './selectors.js'

/** Everything that names an image's packages; `thin`, `fat`, `layered` and spec entries share it. */
export interface PackageInputs {
  /** The positional packages: attribute paths, names, store paths, `.drv` files, out-links, flake references. */
  packages: readonly string[]
  /** `-A`: attribute paths of `-f`'s file, or of `-E`'s value when there is one (as nix-build). */
  attrs?: readonly string[]
  /** `-E`: an expression that evaluates to a package or a list (or set) of packages. */
  expr?: string
  nixOptions?: NixOptions
}

/** Refuses, before any Nix work, a build that names no package at all. */
export function checkInputs(inputs: PackageInputs): void {
  if (inputs.packages.length === 0 && (inputs.attrs ?? []).length === 0 && inputs.expr === undefined)
    throw new UserError('no packages: name them as arguments, with -A ATTR or with -E EXPR')
}

/** A short account of the inputs for progress lines: `etcd, hello-1.0, -E expression`. */
export function describeInputs(inputs: PackageInputs): string {
  const packages = inputs.packages.map((p) =>
    isDerivation(p)
      ? basename(p)
          .replace(/^[^-]*-/, '')
          .replace(/\.drv(!.*)?$/, '')
      : p,
  )
  const attrs = (inputs.attrs ?? []).map((attr) => `-A ${attr}`)
  return [...packages, ...attrs, ...(inputs.expr !== undefined ? ['-E expression'] : [])].join(', ')
}

/**
 * Installs the inputs into `profile`. What nix-env cannot take as it is (flakes, `-E`, `.drv` files,
 * out-links) is built or resolved to store paths first, rooted under `roots` (a path prefix in the
 * build's staging directory) until the profile holds them. When there is none of that, nix-env
 * starts before this first yields, as `installProfile` does.
 */
export function installInputs(
  profile: string,
  inputs: PackageInputs,
  expression: string | undefined,
  roots: string,
  signal: AbortSignal,
  watch: NixWatch = {},
): Promise<void> {
  const options = inputs.nixOptions ?? NO_NIX_OPTIONS
  const source: NixSource = { expression, options }
  const flakes = inputs.packages.filter(isFlakeRef)
  const files = inputs.packages.filter(isFilePath)
  const paths = inputs.packages.filter(isStorePath).map((path) => (isDerivation(path) ? path : topStorePath(path)))
  const selectors = inputs.packages.filter((p) => !isFlakeRef(p) && !isFilePath(p) && !isStorePath(p))
  const direct = { selectors, attrs: inputs.expr === undefined ? (inputs.attrs ?? []) : [] }
  const needsWork = flakes.length > 0 || files.length > 0 || paths.some(isDerivation) || inputs.expr !== undefined
  if (!needsWork && Object.keys(options.arg).length === 0)
    return installProfile(profile, { ...direct, storePaths: paths }, source, signal, watch)
  return (async () => {
    await checkArgExpressions(options, signal)
    const linked = files.map(storePathOfLink)
    const [fromExpr, fromFlakes] = await Promise.all([
      inputs.expr === undefined
        ? []
        : instantiateExpression(inputs.expr, inputs.attrs ?? [], options, `${roots}-drv`, signal),
      flakes.length === 0 ? [] : buildFlakes(flakes, options, `${roots}-flake`, signal, watch),
    ])
    const derivations = [...paths, ...linked, ...fromExpr].filter(isDerivation)
    const built = derivations.length === 0 ? [] : await realise(derivations, options, `${roots}-out`, signal, watch)
    const storePaths = [...[...paths, ...linked, ...fromExpr].filter((p) => !isDerivation(p)), ...built, ...fromFlakes]
    await installProfile(profile, { ...direct, storePaths }, source, signal, watch)
  })()
}

/**
 * Nix parses every `--arg` value up front, even one no function asks for, and its error names no
 * argument; each is parsed here alone first, so a bad one is reported with its name.
 */
export async function checkArgExpressions(options: NixOptions, signal: AbortSignal): Promise<void> {
  await Promise.all(
    Object.entries(options.arg).map(([name, value]) =>
      run('nix-instantiate', ['--parse', '-E', value], { signal }).catch((error: unknown) => {
        if (!(error instanceof CommandError)) throw error
        const nixSaid = errorLine(error.stderr)?.replace(/^error:\s*/, '')
        throw new UserError(`--arg ${name} ${JSON.stringify(value)} is not a Nix expression: ${nixSaid}`)
      }),
    ),
  )
}

/**
 * The store path a link on disk leads to (`./result`, made by nix-build), following it link by link
 * until it reaches the store; the store path it lies in, if it leads inside one (`.../bin/etcd`).
 */
function storePathOfLink(file: string): string {
  let path = resolve(file)
  for (let hops = 0; !isStorePath(path); hops++) {
    const info = lstatSync(path, { throwIfNoEntry: false })
    if (!info) throw new UserError(`no such file: ${file}`)
    if (!info.isSymbolicLink() || hops > 40) {
      const real = realpathSync(path)
      if (isStorePath(real)) return topStorePath(real)
      throw new UserError(
        `${file} is not in the Nix store (it is ${real}): give a nix-build out-link or another link into ${STORE_DIR}`,
      )
    }
    path = resolve(dirname(path), readlinkSync(path))
  }
  return isDerivation(path) ? path : topStorePath(path)
}

/**
 * `-E`, evaluated once by nix-instantiate as nix-build would (with `-A` selecting in its value):
 * its derivations (`X.drv`, `X.drv!bin`), rooted as `root`, `root-2`, ... An expression that
 * evaluates to no derivation at all (`[ ]`, `{ }`) Nix accepts silently; here it is refused.
 */
async function instantiateExpression(
  expr: string,
  attrs: readonly string[],
  options: NixOptions,
  root: string,
  signal: AbortSignal,
): Promise<string[]> {
  const attrArgs = attrs.flatMap((attr) => ['-A', attr])
  const args = ['--add-root', root, '-E', expr, ...attrArgs, ...nixOptionArgs(options)]
  const { stdout } = await run('nix-instantiate', args, { signal }).catch((error: unknown) => {
    throw nixError('cannot evaluate the -E expression', error)
  })
  const drvs = stdout.split('\n').filter(Boolean).map(realpathOfRoot)
  if (drvs.length === 0) throw new UserError(`-E ${JSON.stringify(expr)} evaluates to no packages`)
  return drvs
}

/** nix-instantiate --add-root prints the root links; the derivation is where they lead (`X.drv!bin` stays). */
function realpathOfRoot(printed: string): string {
  if (isStorePath(printed)) return printed
  const [link, output] = printed.split('!')
  const drv = readlinkSync(link!)
  return output === undefined ? drv : `${drv}!${output}`
}

/** `nix-store --realise`: builds the derivations and returns their outputs' store paths. */
async function realise(
  derivations: readonly string[],
  options: NixOptions,
  root: string,
  signal: AbortSignal,
  watch: NixWatch,
): Promise<string[]> {
  const nixStore = nixRunner('nix-store', watch, signal)
  const { stdout } = await nixStore([
    '--realise',
    '--add-root',
    root,
    ...nixOptionArgs(options, 'build'),
    ...derivations,
  ]).catch((error: unknown) => {
    throw nixError(`cannot realise ${derivations.join(' ')}`, error)
  })
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((printed) => (isStorePath(printed) ? printed : realpathSync(printed)))
}

/** Flakes are experimental in Nix 2.4 up to at least 2.8: `nix` needs them turned on, per call. */
const FLAKE_FEATURES = ['--extra-experimental-features', 'nix-command flakes']
const FLAKES_SINCE = [2, 4] as const

/** `nix build --json` of flake references: every output's store path, in order; rooted as `root`. */
async function buildFlakes(
  refs: readonly string[],
  options: NixOptions,
  root: string,
  signal: AbortSignal,
  watch: NixWatch,
): Promise<string[]> {
  await requireFlakes(refs[0]!, signal)
  const nix = nixRunner('nix', watch, signal)
  const args = [...FLAKE_FEATURES, 'build', '--json', '--out-link', root, ...nixOptionArgs(options, 'flake'), ...refs]
  const { stdout } = await nix(args).catch((error: unknown) => {
    throw nixError(`cannot build ${refs.join(' ')}`, error)
  })
  const built = JSON.parse(stdout) as { outputs: Record<string, string> }[]
  return built.flatMap((one) => Object.values(one.outputs))
}

/** Refuses a flake reference where this Nix has no flakes, saying which Nix and flag it needs. */
async function requireFlakes(ref: string, signal: AbortSignal): Promise<void> {
  const version = await run('nix', ['--version'], { signal }).then(
    ({ stdout }) => stdout,
    () => undefined,
  )
  const problem = flakesProblem(version)
  if (problem)
    throw new UserError(
      `flake reference ${ref} needs Nix ${FLAKES_SINCE.join('.')} or later (nix build, with --extra-experimental-features 'nix-command flakes'); ${problem}`,
    )
}

/** Why the Nix whose `nix --version` said `version` (undefined: no `nix` at all) cannot build flakes. */
export function flakesProblem(version: string | undefined): string | undefined {
  if (version === undefined) return "this Nix has no 'nix' command"
  const [, major, minor] = /(\d+)\.(\d+)/.exec(version)?.map(Number) ?? []
  const since = FLAKES_SINCE[0] * 1000 + FLAKES_SINCE[1]
  if (major === undefined || minor === undefined || major * 1000 + minor < since)
    return `this is ${version.trim() || 'an unknown Nix'}`
  return undefined
}
