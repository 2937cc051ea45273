// A layered image's layers as found beside it (<out-dir>/layers): what inspect lists, what validate
// checks (each file there with the pinned image ID, exec resolving in the tree rkt would render),
// and what prune may take away.
import { lstat, readdir, rm } from 'node:fs/promises'
import { dirname, join, posix } from 'node:path'
import type { Header } from 'tar-stream'
import { dependencyFileName, layersFolderOf, recordFileOf, STORE_PATHS_ANNOTATION } from '../plan/layers.js'
import { UserError } from '../util/errors.js'
import { exists, signatureFileOf } from './files.js'
import { readImage, readManifest, type ImageContents } from './inspect.js'
import type { Dependency, ImageManifest } from './manifest.js'

/** Where a dependency's file is, for an image in `outDir`. */
export function layerFileOf(image: string, dependency: Dependency): string {
  return join(layersFolderOf(dirname(image)), dependencyFileName(dependency))
}

/** The files of an image's layers, in the order rkt renders them. */
export function layerFilesOfImage(image: string, manifest: ImageManifest): string[] {
  return (manifest.dependencies ?? []).map((dependency) => layerFileOf(image, dependency))
}

export interface LayerSummary {
  file: string
  name: string
  imageId: string
  storePaths: string[]
  size: number | null
  /** Other images of the out-dir that depend on it too. */
  sharedWith: string[]
}

/** The layers of `image` and who else in its out-dir uses each; a missing one has no size and no paths. */
export async function summariseLayers(image: string, manifest: ImageManifest): Promise<LayerSummary[]> {
  const others = (await imagesIn(dirname(image))).filter((other) => other.file !== image)
  return Promise.all(
    (manifest.dependencies ?? []).map(async (dependency) => {
      const file = layerFileOf(image, dependency)
      const info = await lstat(file).catch(() => undefined)
      const layer = info ? await readManifest(file).catch(() => undefined) : undefined
      const paths = layer?.annotations?.find((annotation) => annotation.name === STORE_PATHS_ANNOTATION)?.value
      return {
        file,
        name: dependency.imageName,
        imageId: dependency.imageID ?? '',
        storePaths: paths ? paths.split(' ') : [],
        size: info ? info.size : null,
        sharedWith: others
          .filter((other) => other.dependencies.some((theirs) => theirs.imageID === dependency.imageID))
          .map((other) => other.file),
      }
    }),
  )
}

/**
 * Problems with a layered image's layers: a missing file, one whose image ID is not the pinned
 * one, and an exec that does not resolve in the tree the layers and the image render.
 */
export async function layerProblems(image: string, contents: ImageContents, signal?: AbortSignal): Promise<string[]> {
  const dependencies = contents.manifest.dependencies ?? []
  if (dependencies.length === 0) return []
  const problems: string[] = []
  const tree = new Map<string, Header>()
  const collect = (name: string, header: Header) => {
    if (name.startsWith('rootfs/')) tree.set(name.slice('rootfs'.length), header)
  }
  for (const dependency of dependencies) {
    const file = layerFileOf(image, dependency)
    if (!(await exists(file))) {
      problems.push(`layer ${dependency.imageName} is missing: no ${file}`)
      continue
    }
    const layer = await readImage(file, signal, collect).catch((error: unknown) => {
      if (!(error instanceof UserError)) throw error
      problems.push(`layer ${file}: ${error.message}`)
      return undefined
    })
    if (layer && layer.imageId !== dependency.imageID)
      problems.push(
        `layer ${file} has image ID ${layer.imageId.slice(0, 23)}..., not the pinned ${dependency.imageID?.slice(0, 23)}...`,
      )
  }
  // The image's own rootfs renders last, over its layers; readImage has walked it already, so once more.
  await readImage(image, signal, collect)
  const exec = contents.manifest.app?.exec?.[0]
  if (exec && problems.length === 0 && !resolvesToFile(tree, exec))
    problems.push(`exec ${exec} does not resolve to a file in the tree its layers and rootfs render`)
  return problems
}

/** Follows symlinks through the rendered tree, as the kernel would inside the pod. */
function resolvesToFile(tree: ReadonlyMap<string, Header>, path: string): boolean {
  let pending = path.split('/').filter(Boolean)
  let at = '/'
  for (let hops = 0; pending.length > 0;) {
    const next = posix.join(at, pending.shift()!)
    const entry = tree.get(next)
    if (!entry) return false
    if (entry.type === 'symlink') {
      if (++hops > 40) return false
      const target = entry.linkname ?? ''
      pending = [...target.split('/').filter(Boolean), ...pending]
      at = target.startsWith('/') ? '/' : at
      continue
    }
    if (pending.length > 0 && entry.type !== 'directory') return false
    if (pending.length === 0) return entry.type === 'file' || entry.type === 'link'
    at = next
  }
  return false
}

interface ImageDependencies {
  file: string
  dependencies: Dependency[]
}

/** Every image of an out-dir (`*.aci` beside the layers folder) with what it depends on. */
async function imagesIn(outDir: string): Promise<ImageDependencies[]> {
  const names = await readdir(outDir).catch(() => [] as string[])
  return imagesAt(names.filter((name) => name.endsWith('.aci')).map((name) => join(outDir, name)))
}

/** The images of `files` that can be read, with what each depends on. */
async function imagesAt(files: readonly string[]): Promise<ImageDependencies[]> {
  const images = await Promise.all(
    files.map(async (file) => {
      const manifest = await readManifest(file).catch(() => undefined)
      return manifest ? { file, dependencies: manifest.dependencies ?? [] } : undefined
    }),
  )
  return images.filter((image) => image !== undefined)
}

export interface PruneResult {
  removed: string[]
  bytes: number
}

/**
 * Removes the layers no image of the out-dir depends on, nor any of `pendingImages` (images about to
 * be put there), with their records and signatures. A layer a build holds staged (a second hard
 * link) is left: that build is about to use it.
 */
export async function pruneLayers(outDir: string, pendingImages: readonly string[] = []): Promise<PruneResult> {
  const folder = layersFolderOf(outDir)
  const files = (await readdir(folder).catch(() => [] as string[])).filter((name) => name.endsWith('.aci'))
  const candidates: string[] = []
  for (const name of files) {
    const info = await lstat(join(folder, name))
    if (info.isFile() && info.nlink === 1) candidates.push(name)
  }
  // Read after the candidates: an image committed meanwhile is seen, and its layers kept.
  const used = new Set<string>()
  for (const image of [...(await imagesIn(outDir)), ...(await imagesAt(pendingImages))])
    for (const dependency of image.dependencies) used.add(dependencyFileName(dependency))
  const result: PruneResult = { removed: [], bytes: 0 }
  for (const name of candidates.filter((candidate) => !used.has(candidate))) {
    const file = join(folder, name)
    result.bytes += (await lstat(file)).size
    await rm(file, { force: true })
    await rm(recordFileOf(file), { force: true })
    await rm(signatureFileOf(file), { force: true })
    result.removed.push(file)
  }
  return result
}
