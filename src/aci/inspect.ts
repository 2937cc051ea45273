// Reading an image back: its manifest, what lies at the top of its tar, its kind, its ID. One pass
// over the decompressed tar serves them all; `readManifest` stops at the manifest.
import { createHash } from 'node:crypto'
import { posix } from 'node:path'
import { extract, type Header } from 'tar-stream'
import { isStorePath } from '../nix/selectors.js'
import { UserError, messageOf } from '../util/errors.js'
import type { Compression } from './compression.js'
import { parseManifest, type ImageManifest } from './manifest.js'
import { openImage, type OpenedImage } from './read.js'

/**
 * `thin`: store paths mounted from the host; `fat`: a store inside the rootfs; `layered`: its
 * store in the images it depends on; `other`: none of them.
 */
export type ImageKindFound = 'thin' | 'fat' | 'layered' | 'other'

export interface ImageContents {
  manifest: ImageManifest
  kind: ImageKindFound
  /** First path components of the tar's entries (`manifest`, `rootfs`, and anything that should not be there). */
  topLevel: string[]
  /** Entries (or hard link targets) that, once normalised, are absolute or climb out of the image with `..`. */
  escapingEntries: string[]
  entries: number
  size: number
  compression: Compression
  imageId: string
}

/**
 * More than any manifest needs (one of 100,000 mount points is about 15 MiB): a larger one is not
 * read into memory.
 */
const MAX_MANIFEST_BYTES = 32 * 1024 * 1024

/** `onEntry` sees every entry's header, its name normalised: for a reader of the tree (exec resolution). */
export async function readImage(
  file: string,
  signal?: AbortSignal,
  onEntry?: (name: string, header: Header) => void,
): Promise<ImageContents> {
  const opened = await openImage(file, signal)
  const hash = createHash('sha512')
  opened.tar.on('data', (chunk: Buffer) => hash.update(chunk))
  const topLevel = new Set<string>()
  const escapingEntries: string[] = []
  let manifestText: string | undefined
  let hasStore = false
  let entries = 0
  await walkTar(file, opened, async (header, body) => {
    entries++
    const name = normalisedName(header.name)
    onEntry?.(name, header)
    topLevel.add(name.split('/')[0]!)
    if (escapes(name)) escapingEntries.push(header.name)
    if (header.type === 'link' && header.linkname && escapes(normalisedName(header.linkname)))
      escapingEntries.push(`${header.name} (a hard link to ${header.linkname})`)
    if (name.startsWith('rootfs/') && isStorePath(name.slice('rootfs'.length))) hasStore = true
    if (name === 'manifest') manifestText = await manifestEntryText(file, header, body)
    else body.resume()
    return true
  })
  if (entries === 0) throw new UserError(`${file} is not a readable ACI: it holds no tar entries`)
  const manifest = manifestOf(file, manifestText)
  return {
    manifest,
    kind: (manifest.dependencies ?? []).length > 0 ? 'layered' : hasStore ? 'fat' : kindByMounts(manifest),
    topLevel: [...topLevel].sort(),
    escapingEntries,
    entries,
    size: opened.size,
    compression: opened.compression,
    imageId: `sha512-${hash.digest('hex')}`,
  }
}

/** The manifest alone, read up to its entry (the first one in images nix2aci and acbuild write). */
export async function readManifest(file: string, signal?: AbortSignal): Promise<ImageManifest> {
  const opened = await openImage(file, signal)
  let manifestText: string | undefined
  await walkTar(file, opened, async (header, body) => {
    if (normalisedName(header.name) !== 'manifest') {
      body.resume()
      return true
    }
    manifestText = await manifestEntryText(file, header, body)
    return false
  })
  return manifestOf(file, manifestText)
}

/** Whether the manifest mounts store paths from the host: a thin image (its rootfs has no store). */
function kindByMounts(manifest: ImageManifest): ImageKindFound {
  return (manifest.app?.mountPoints ?? []).some((mount) => isStorePath(mount.path)) ? 'thin' : 'other'
}

type EntryBody = AsyncIterable<Buffer> & { resume(): void }

/** Runs `onEntry` for each entry until it returns false; any failure to read is the file's fault. */
async function walkTar(
  file: string,
  opened: OpenedImage,
  onEntry: (header: Header, body: EntryBody) => Promise<boolean>,
): Promise<void> {
  const reader = extract()
  opened.tar.on('error', (error) => reader.destroy(error))
  opened.tar.pipe(reader)
  try {
    for await (const entry of reader) {
      if (!(await onEntry(entry.header, entry as unknown as EntryBody))) break
    }
  } catch (error) {
    if (error instanceof UserError) throw error
    const kind = opened.compression === 'none' ? 'uncompressed' : opened.compression
    throw new UserError(`${file} is not a readable ACI (${kind} tar): ${messageOf(error)}`)
  } finally {
    // Stops a decompressor that still has the rest of the image to give.
    opened.tar.destroy()
  }
}

async function manifestEntryText(file: string, header: Header, body: EntryBody): Promise<string> {
  if ((header.size ?? 0) > MAX_MANIFEST_BYTES)
    throw new UserError(`${file} has a manifest of ${header.size} bytes, more than ${MAX_MANIFEST_BYTES} can be`)
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(chunk)
  return Buffer.concat(chunks).toString('utf8')
}

function manifestOf(file: string, text: string | undefined): ImageManifest {
  if (text === undefined) throw new UserError(`${file} is not an ACI: it has no manifest`)
  return parseManifest(text, file)
}

/** A tar entry's name as a path inside the image: `./manifest` and `rootfs//a` are `manifest` and `rootfs/a`. */
function normalisedName(name: string): string {
  return posix.normalize(name).replace(/\/+$/, '')
}

function escapes(name: string): boolean {
  return posix.isAbsolute(name) || name === '..' || name.startsWith('../')
}
