// The built-in engine: packs manifest, skeleton and (for fat images and layers) store paths straight
// from the store into a tar, which is compressed (whole in memory when small, else streamed through
// the compressor) into the output file and hashed for the image ID.
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { open, writeFile } from 'node:fs/promises'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { gzip } from 'node:zlib'
import { promisify } from 'node:util'
import { pack as tarPack, type Header as TarHeader, type Pack } from 'tar-stream'
import { GZIP_LEVEL, compressor, type Compression } from '../aci/compression.js'
import type { ImageManifest } from '../aci/manifest.js'
import type { LayerPlan } from '../plan/layers.js'
import { imageManifest, layerManifest } from '../plan/manifest.js'
import type { ImagePlan } from '../plan/plan.js'
import { findOnPath } from '../util/exec.js'
import type { WriteImage } from './engine.js'

/** Entries the plan makes up get the Nix store's own fixed time, so rebuilds are byte-identical. */
const FIXED_MTIME = new Date(1000)
const gzipAsync = promisify(gzip)
/** Files up to this size are read whole: cheaper than a stream each. */
const SMALL_FILE = 1 << 20

export const writeImage: WriteImage = async (plan, output, { compression, signal }) => ({
  imageId: await writeImageFile(imageManifest(plan), plan, output, compression, signal),
})

/** Packs the manifest and `contents` into a tar written to `output`; resolves to its image ID. */
async function writeImageFile(
  manifest: ImageManifest,
  contents: Pick<ImagePlan, 'skeleton' | 'storePaths'>,
  output: string,
  compression: Compression,
  signal: AbortSignal,
): Promise<string> {
  const pack = tarPack()
  const writing = writeTar(pack, output, compression, signal)
  const packing = packContents(pack, manifest, contents).then(() => pack.finalize())
  // Either side failing ends the other: a failed write leaves no store file open in the pack.
  packing.catch((error: Error) => pack.destroy(error))
  writing.catch((error: Error) => pack.destroy(error))
  const [, tarHash] = await Promise.all([packing, writing])
  return `sha512-${tarHash}`
}

/**
 * A tar up to this size (a thin image, a layered app image, a one-file layer) is gzipped whole, in
 * memory, by node's zlib: it costs a fraction of setting up a stream pipeline and starting pigz. A
 * larger one streams through pigz when installed.
 */
const SMALL_TAR = 4 << 20

/**
 * Writes the tar `pack` makes into `output`, compressed; resolves to the tar's sha512 (hex). For gzip,
 * the tar's size alone picks the way (see SMALL_TAR), so the same contents give the same bytes.
 */
async function writeTar(pack: Pack, output: string, compression: Compression, signal: AbortSignal): Promise<string> {
  if (compression !== 'gzip') return streamHashed(pack, output, compression, signal)
  // The tar's head, up to SMALL_TAR and a chunk: the whole tar when it ends within it.
  const head: Buffer[] = []
  let headBytes = 0
  const ended = await new Promise<boolean>((resolve, reject) => {
    const settle = (value: boolean) => {
      pack.off('data', onData)
      pack.off('end', onEnd)
      pack.off('error', reject)
      resolve(value)
    }
    const onData = (data: unknown) => {
      const chunk = data as Buffer
      head.push(chunk)
      headBytes += chunk.length
      if (headBytes > SMALL_TAR) {
        pack.pause()
        settle(false)
      }
    }
    const onEnd = () => settle(true)
    pack.on('data', onData)
    pack.once('end', onEnd)
    pack.once('error', reject)
  })
  if (ended) {
    const tar = Buffer.concat(head, headBytes)
    await writeFile(output, await gzipAsync(tar, { level: GZIP_LEVEL }), { flag: 'wx', signal })
    return createHash('sha512').update(tar).digest('hex')
  }
  return streamHashed(pack, output, compression, signal, { pigz: findOnPath('pigz'), head })
}

/** Bytes a stage of the write holds before it waits: the pack can run a file ahead of the compressor. */
const STAGE_BUFFER = 1 << 20
/**
 * Smaller chunks (a tar's headers, padding and small files) are gathered into one of at least this
 * size: the compressor pays per chunk (a call, or a write into pigz's pipe), whatever its size.
 */
const GATHERED_CHUNK = 64 * 1024

/**
 * Streams the tar through the compressor into `output`, after `head` (what was read of it already);
 * resolves to the tar's sha512 (hex). `pigz` is gzip's program, when one is to run.
 */
async function streamHashed(
  tar: Pack,
  output: string,
  compression: Compression,
  signal: AbortSignal,
  { pigz, head = [] }: { pigz?: string | undefined; head?: readonly Buffer[] } = {},
): Promise<string> {
  const tarHash = createHash('sha512')
  let gathered: Buffer[] = []
  let gatheredBytes = 0
  const pushGathered = (stream: Transform) => {
    if (gatheredBytes > 0) stream.push(Buffer.concat(gathered, gatheredBytes))
    gathered = []
    gatheredBytes = 0
  }
  const hashTar = new Transform({
    highWaterMark: STAGE_BUFFER,
    transform(chunk: Buffer, _encoding, done) {
      tarHash.update(chunk)
      if (chunk.length >= GATHERED_CHUNK) {
        pushGathered(this)
        return done(null, chunk)
      }
      gathered.push(chunk)
      gatheredBytes += chunk.length
      if (gatheredBytes >= GATHERED_CHUNK) pushGathered(this)
      done()
    },
    flush(done) {
      pushGathered(this)
      done()
    },
  })
  const file = await open(output, 'wx')
  // The write stream owns the file from here on: it closes it when the pipeline ends, well or not.
  const writing = createWriteStream('', { fd: file, highWaterMark: STAGE_BUFFER })
  // A program writes into the file itself: no compressed byte passes through Node.
  const compressed = compressor(compression, { pigz, signal, into: file.fd })
  for (const chunk of head) hashTar.write(chunk)
  await pipeline(tar, hashTar, compressed, writing, { signal })
  return tarHash.digest('hex')
}

type Header = Partial<TarHeader> & Pick<TarHeader, 'name'>

function addEntry(pack: Pack, header: Header, body?: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error | null) => (error ? reject(error) : resolve())
    const entry = body === undefined ? pack.entry(header, done) : pack.entry(header, body, done)
    // A failure downstream (a full disk) destroys the entry too; `done` already reports it.
    entry.on('error', () => undefined)
  })
}

function rootHeader(name: string, type: Header['type'], mode: number): Header {
  return { name, type, mode, uid: 0, gid: 0, mtime: FIXED_MTIME }
}

/**
 * Writes a layer: always gzip (pigz when installed), whatever the app image's compression, so that
 * every image sharing the layer shares its file too. Resolves to its image ID.
 */
export async function writeLayer(layer: LayerPlan, output: string, signal: AbortSignal): Promise<{ imageId: string }> {
  return { imageId: await writeImageFile(layerManifest(layer), layer, output, 'gzip', signal) }
}

async function packContents(
  pack: Pack,
  manifest: ImageManifest,
  plan: Pick<ImagePlan, 'skeleton' | 'storePaths'>,
): Promise<void> {
  await addEntry(pack, rootHeader('manifest', 'file', 0o644), JSON.stringify(manifest))
  await addEntry(pack, rootHeader('rootfs', 'directory', 0o755))
  for (const entry of plan.skeleton) {
    const name = `rootfs/${entry.path}`
    if (entry.type === 'dir') await addEntry(pack, rootHeader(name, 'directory', 0o755))
    else if (entry.type === 'file') await addEntry(pack, rootHeader(name, 'file', 0o644), entry.content)
    else await addEntry(pack, { ...rootHeader(name, 'symlink', 0o777), linkname: entry.target })
  }
  const hardlinks = new Map<string, string>()
  for (const storePath of plan.storePaths) await packTree(pack, storePath, `rootfs${storePath}`, hardlinks)
}

/**
 * Adds a file tree as it is on disk: modes, times and symlinks kept, hardlinked files stored once.
 * Metadata and small files are read synchronously: from the page cache such a call takes microseconds
 * and a trip to the threadpool several times that, while the compressor works on threads of its own.
 */
async function packTree(pack: Pack, path: string, name: string, hardlinks: Map<string, string>): Promise<void> {
  const info = lstatSync(path)
  const header: Header = { name, mode: info.mode & 0o7777, uid: 0, gid: 0, mtime: info.mtime }
  if (info.isDirectory()) {
    await addEntry(pack, { ...header, type: 'directory' })
    for (const child of readdirSync(path).sort()) {
      await packTree(pack, `${path}/${child}`, `${name}/${child}`, hardlinks)
    }
  } else if (info.isSymbolicLink()) {
    await addEntry(pack, { ...header, type: 'symlink', linkname: readlinkSync(path) })
  } else if (info.isFile()) {
    const inode = `${info.dev}:${info.ino}`
    const firstName = info.nlink > 1 ? hardlinks.get(inode) : undefined
    if (firstName) return addEntry(pack, { ...header, type: 'link', linkname: firstName })
    if (info.nlink > 1) hardlinks.set(inode, name)
    if (info.size <= SMALL_FILE) return addEntry(pack, { ...header, type: 'file' }, readFileSync(path))
    await new Promise<void>((resolve, reject) => {
      const entry = pack.entry({ ...header, type: 'file', size: info.size }, (error) =>
        error ? reject(error) : resolve(),
      )
      pipeline(createReadStream(path, { highWaterMark: SMALL_FILE }), entry).catch(reject)
    })
  } else {
    throw new Error(`cannot put ${path} in an image: not a file, directory or symlink`)
  }
}
