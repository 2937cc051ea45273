// Layered images: the closure split into layer images, each a few store paths, pinned by the app
// image as appc dependencies. Pure: the reference graph in, the layers out.
import { createHash } from 'node:crypto'
import { basename } from 'node:path'
import type { Dependency, NameValue } from '../aci/manifest.js'
import { UserError } from '../util/errors.js'
import { acIdentifierProblem, toAcName } from './appc.js'
import { parentsOf, type SkeletonEntry } from './plan.js'

/**
 * rkt's cost grows with the number of dependencies (measured with rkt 1.30: 301 of them took 25 s
 * to fetch and 9.5 s for each run, about 80 ms and 30 ms each; 11 took 1.1 s and 0.4 s). 20 layers
 * keep a fetch near 2 s and a run near 0.6 s, and still give the most shared paths layers of their own.
 */
export const DEFAULT_MAX_LAYERS = 20

/**
 * Layers are named `<prefix>/<package name>`; discovery resolves a name by its host, so a prefix
 * whose host serves them lets `publish` hand them out. The default's host (.invalid, RFC 2606)
 * cannot exist: rkt never asks someone else's server for a layer it lacks.
 */
export const DEFAULT_LAYER_PREFIX = 'nix2aci.invalid/store'

/** The annotation that lists a layer's store paths, for `inspect`. */
export const STORE_PATHS_ANNOTATION = 'nix2aci/store-paths'

export interface LayerPlan {
  name: string
  /** `version`: the store path's hash (a group's: a digest of its paths), then os and arch. */
  labels: NameValue[]
  annotations: NameValue[]
  /** The store directory's own entries (`nix`, `nix/store`), which every layer has. */
  skeleton: SkeletonEntry[]
  storePaths: string[]
  /** The file in the layers folder: named by content, as the name and version say it. */
  file: string
}

export interface LayerOptions {
  storeDir: string
  prefix: string
  maxLayers: number
  os: string
  arch: string
}

/** `--max-layers`: a positive whole number, as text (command line) or a number (spec). */
export function parseMaxLayers(value: string | number): number {
  const text = String(value).trim()
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text)))
    throw new UserError(`--max-layers: expected a positive whole number, not '${value}'`)
  return Number(text)
}

/** The prefix must make valid AC Identifiers of the names below it. */
export function checkLayerPrefix(prefix: string): void {
  const problem = acIdentifierProblem(prefix)
  if (problem) throw new UserError(`--layer-prefix '${prefix}': ${problem}`)
}

/**
 * One store path per layer while they fit in `maxLayers`; otherwise `maxLayers - 1` paths get layers
 * of their own and the rest share the last one. First the `packages` (the ones the image was asked
 * for, which change most from one build to the next: a changed package then rewrites its own layer,
 * not the shared one), then the most referenced paths (dockerTools' popularity contest: how many
 * paths of the closure refer to each), so that shared libraries stay shareable between images. Ties
 * go by path, so the same graph always gives the same layers. `references` maps every path of the
 * closure to the paths it refers to.
 */
export function groupLayers(
  references: ReadonlyMap<string, readonly string[]>,
  maxLayers: number,
  packages: readonly string[] = [],
): string[][] {
  const paths = [...references.keys()].sort()
  if (paths.length <= maxLayers) return paths.map((path) => [path])
  const referrers = new Map(paths.map((path) => [path, 0]))
  for (const [path, refs] of references)
    for (const ref of new Set(refs)) if (ref !== path && referrers.has(ref)) referrers.set(ref, referrers.get(ref)! + 1)
  const asked = new Set(packages.filter((path) => referrers.has(path)))
  const rank = (path: string) => (asked.has(path) ? Infinity : referrers.get(path)!)
  const ranked = [...paths].sort((a, b) => rank(b) - rank(a) || (a < b ? -1 : 1))
  const own = ranked.slice(0, maxLayers - 1)
  const shared = ranked.slice(maxLayers - 1).sort()
  return [...own.map((path) => [path]), shared]
}

/**
 * What a layered image holds itself rather than in layers: the user environment and nix-env's
 * manifest, which change with every package list and so would never be shared.
 */
export function imageOwnPaths(userEnvironment: string, references: ReadonlyMap<string, readonly string[]>): string[] {
  const manifests = (references.get(userEnvironment) ?? []).filter((path) => path.endsWith('-env-manifest.nix'))
  return [userEnvironment, ...manifests]
}

/** The layers of a closure: named, labelled and filed by their store paths alone. */
export function planLayers(
  references: ReadonlyMap<string, readonly string[]>,
  options: LayerOptions,
  packages: readonly string[] = [],
): LayerPlan[] {
  return groupLayers(references, options.maxLayers, packages).map((storePaths) => {
    const [hash, ...nameParts] = basename(storePaths[0]!).split('-')
    const single = storePaths.length === 1
    const version = single ? hash! : createHash('sha256').update(storePaths.join('\n')).digest('hex').slice(0, 32)
    const name = `${options.prefix}/${single ? toAcName(nameParts.join('-')) : `group-of-${storePaths.length}`}`
    return {
      name,
      labels: [
        { name: 'version', value: version },
        { name: 'os', value: options.os },
        { name: 'arch', value: options.arch },
      ],
      annotations: [{ name: STORE_PATHS_ANNOTATION, value: storePaths.join(' ') }],
      skeleton: parentsOf(options.storeDir).map((path) => ({ type: 'dir', path })),
      storePaths,
      file: layerFileName(name, version),
    }
  })
}

/** `nix2aci.invalid/store/glibc-2-36` version `y8x...` -> `nix2aci.invalid-store-glibc-2-36_y8x....aci`. */
export function layerFileName(name: string, version: string): string {
  // `_` is in no AC Identifier: it parts name and version unambiguously.
  return `${name.replaceAll('/', '-')}_${version}.aci`
}

/** Beside each layer, what it held when written (pipeline/layers.ts). */
export const recordFileOf = (layerFile: string) => `${layerFile}.id`

/** The version label of a dependency: what, with its name, files it in the layers folder. */
function versionOf(labels: readonly NameValue[] | undefined): string | undefined {
  return labels?.find((label) => label.name === 'version')?.value
}

/** The one folder of an out-dir that holds the layers of every image in it. */
export function layersFolderOf(outDir: string): string {
  return `${outDir}/layers`
}

/** A dependency's file name in the layers folder, from its name and version label. */
export function dependencyFileName(dependency: Dependency): string {
  return layerFileName(dependency.imageName, versionOf(dependency.labels) ?? '')
}

/** The files of the layers an image depends on, in its layers folder, in the order they render. */
export function layerFilesOf(folder: string, dependencies: readonly Dependency[]): string[] {
  return dependencies.map((dependency) => `${folder}/${dependencyFileName(dependency)}`)
}
