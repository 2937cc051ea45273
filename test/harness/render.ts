// An image's dependencies rendered under its rootfs as rkt does it (appc's acirenderer): each one
// found by image ID (or by name and labels when none is pinned) among a directory's images, their
// own dependencies after them, depth first; a file comes from the first image in that list that
// has it (the app, then its last dependency before the earlier ones: a later dependency is laid
// down over an earlier one, the app over them all), and none goes below another image's non-directory.
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdirSync, statSync } from 'node:fs'
import { join, posix } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { extract } from 'tar-stream'
import {
  detectCompression,
  EXTRACT_FLAGS,
  TAR_FLAG,
  uncompressedTar,
  type Dependency,
  type ImageManifest,
} from './unpack.js'

interface TarEntry {
  /** As written in the tar, which is what tar must be asked for. */
  name: string
  /** Normalised: `rootfs/etc/x`. */
  path: string
  isDirectory: boolean
}

interface IndexedImage {
  file: string
  id: string
  manifest: ImageManifest
  entries: TarEntry[]
}

/** Images already read, by file and the stat that says they are unchanged: tests render the same layers often. */
const readImages = new Map<string, { stamp: string; image: Promise<IndexedImage> }>()

/** The image's ID (sha512 of its uncompressed tar), manifest and entries, in one pass over the tar. */
function indexImage(file: string): Promise<IndexedImage> {
  const info = statSync(file)
  const stamp = `${info.ino}:${info.size}:${info.mtimeMs}`
  const known = readImages.get(file)
  if (known?.stamp === stamp) return known.image
  const image = (async () => {
    const tar = uncompressedTar(file, await detectCompression(file))
    const hash = createHash('sha512')
    tar.on('data', (chunk: Buffer) => hash.update(chunk))
    const entries: TarEntry[] = []
    let manifestText: string | undefined
    const reader = extract()
    const walking = (async () => {
      for await (const entry of reader) {
        const { name, type } = entry.header
        const path = posix.normalize(name).replace(/\/+$/, '')
        entries.push({ name, path, isDirectory: type === 'directory' })
        if (path !== 'manifest') {
          entry.resume()
          continue
        }
        const chunks: Buffer[] = []
        for await (const chunk of entry) chunks.push(chunk as Buffer)
        manifestText = Buffer.concat(chunks).toString('utf8')
      }
    })()
    await Promise.all([pipeline(tar, reader), walking])
    if (manifestText === undefined) throw new Error(`${file}: no manifest`)
    const manifest = JSON.parse(manifestText) as ImageManifest
    return { file, id: `sha512-${hash.digest('hex')}`, manifest, entries }
  })()
  readImages.set(file, { stamp, image })
  image.catch(() => readImages.delete(file))
  return image
}

/** Every .aci file directly in the directories. */
async function indexImages(dirs: readonly string[]): Promise<IndexedImage[]> {
  const files = dirs.flatMap((dir) =>
    readdirSync(dir)
      .filter((name) => name.endsWith('.aci'))
      .sort()
      .map((name) => join(dir, name)),
  )
  return Promise.all(files.map(indexImage))
}

const hasLabels = (image: IndexedImage, labels: Dependency['labels'] = []) =>
  labels.every((label) => image.manifest.labels?.some((l) => l.name === label.name && l.value === label.value))

/** The one image a dependency means, or an error that says why there is none. */
function resolve(app: string, dependency: Dependency, images: IndexedImage[], dirs: readonly string[]): IndexedImage {
  const { imageName, imageID } = dependency
  const byName = images.filter((image) => image.manifest.name === imageName && hasLabels(image, dependency.labels))
  const what = `${app}: dependency ${imageName}${imageID ? ` ${imageID}` : ''}`
  let found: IndexedImage[]
  if (imageID) {
    // rkt takes an ID or a prefix of one, as `rkt image list` shows them.
    if (!/^sha512-[0-9a-f]+$/.test(imageID)) throw new Error(`${what}: the imageID is not sha512-HEX`)
    found = images.filter((image) => image.id.startsWith(imageID))
  } else found = byName
  const ids = new Set(found.map((image) => image.id))
  if (ids.size > 1) throw new Error(`${what} is ambiguous: ${found.map((image) => image.file).join(', ')}`)
  if (found.length === 0) {
    const named = byName.map((image) => `; ${image.file} is ${imageName} but its image ID is ${image.id}`).join('')
    throw new Error(`${what} is not among the images in ${dirs.join(', ') || '(no images option given)'}${named}`)
  }
  return found[0]!
}

interface Rendered {
  image: IndexedImage
  /** The images above it on its branch of the dependency tree (an image may not depend on itself). */
  ancestors: string[]
}

/** The flat dependency tree, upper image first: app, its last dependency and that one's, ..., its first. */
function dependencyList(app: IndexedImage, images: IndexedImage[], dirs: readonly string[]): Rendered[] {
  const list: Rendered[] = [{ image: app, ancestors: [] }]
  for (let i = 0; i < list.length; i++) {
    const { image, ancestors } = list[i]!
    if (image.manifest.pathWhitelist?.length)
      throw new Error(`${image.file}: pathWhitelist is not rendered by the test harness`)
    const below = [...ancestors, image.id]
    for (const dependency of image.manifest.dependencies ?? []) {
      const found = resolve(app.file, dependency, images, dirs)
      if (below.includes(found.id))
        throw new Error(`${app.file}: ${found.file} (${found.id}) depends on itself through its dependencies`)
      // Each one goes right after its parent: the last dependency ends up first, above the others.
      list.splice(i + 1, 0, { image: found, ancestors: below })
    }
  }
  return list
}

/**
 * Lays the dependencies of `app` (already unpacked into `dir`, manifest and rootfs) under its rootfs:
 * resolves them among the .aci files in the `images` directories, and extracts from each one the
 * files no image above it has. Throws when one is missing, ambiguous or an image depends on itself.
 */
export async function renderDependencies(app: string, images: readonly string[], dir: string): Promise<void> {
  const list = dependencyList(await indexImage(app), await indexImages(images), images)
  // Whether each path is a directory, once the images above have been laid down.
  const taken = new Map<string, boolean>([['rootfs', true]])
  const belowNonDirectory = (path: string) => {
    for (let parent = posix.dirname(path); parent !== '.'; parent = posix.dirname(parent))
      if (taken.get(parent) === false) return true
    return false
  }
  for (const [index, { image }] of list.entries()) {
    const selected: string[] = []
    for (const entry of image.entries) {
      if (entry.path === 'rootfs') selected.push(entry.name)
      if (!entry.path.startsWith('rootfs/') || taken.has(entry.path) || belowNonDirectory(entry.path)) continue
      taken.set(entry.path, entry.isDirectory)
      // The parents a file implies are directories: no image below may put a symlink there to write through.
      for (let parent = posix.dirname(entry.path); !taken.has(parent); parent = posix.dirname(parent))
        taken.set(parent, true)
      selected.push(entry.name)
    }
    // The app is unpacked whole already: its entries only claim their paths.
    if (index > 0 && selected.length > 0) await extractEntries(image.file, selected, dir)
  }
}

/** Extracts exactly the named entries (no directory's contents with it) of an image into `dir`. */
async function extractEntries(image: string, names: string[], dir: string): Promise<void> {
  const compression = await detectCompression(image)
  const args = ['-x', ...TAR_FLAG[compression], ...EXTRACT_FLAGS, '-f', image, '-C', dir]
  const child = spawn('tar', [...args, '--no-recursion', '--null', '--verbatim-files-from', '-T', '-'], {
    stdio: ['pipe', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text))
  child.stdin.end(names.map((name) => `${name}\0`).join(''))
  const status = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', resolve)
  })
  if (status !== 0) throw new Error(`${image}: tar could not extract its dependency files: ${stderr.trim()}`)
}
