// The built-in engine: streams manifest, skeleton and (for fat images) the closure straight from
// the store into the compressor and the output file, hashing the tar on the way for the image ID.
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { lstat, readdir, readFile, readlink, writeFile } from 'node:fs/promises'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { gzipSync } from 'node:zlib'
import { pack as tarPack, type Header as TarHeader, type Pack } from 'tar-stream'
import { GZIP_LEVEL, compressor } from '../aci/compression.js'
import { imageManifest } from '../plan/manifest.js'
import type { ImagePlan } from '../plan/plan.js'
import type { EngineOptions, EngineResult } from './engine.js'

/** Entries the plan makes up get the Nix store's own fixed time, so rebuilds are byte-identical. */
const FIXED_MTIME = new Date(1000)
/** Files up to this size are read whole: cheaper than a stream each. */
const SMALL_FILE = 1 << 20

export async function writeNativeImage(plan: ImagePlan, output: string, options: EngineOptions): Promise<EngineResult> {
  return plan.storePaths.length === 0 && options.compression === 'gzip'
    ? writeInMemory(plan, output)
    : writeStreaming(plan, output, options)
}

/**
 * An image without store content (a thin image) is a few kilobytes: packed in memory and written
 * at once, it costs a third of what setting up the stream pipeline does.
 */
async function writeInMemory(plan: ImagePlan, output: string): Promise<EngineResult> {
  const pack = tarPack()
  const chunks: Buffer[] = []
  pack.on('data', (chunk) => chunks.push(chunk as Buffer))
  const ended = new Promise<void>((resolve, reject) => pack.on('end', () => resolve()).on('error', reject))
  await packImage(pack, plan)
  pack.finalize()
  await ended
  const tar = Buffer.concat(chunks)
  await writeFile(output, gzipSync(tar, { level: GZIP_LEVEL }), { flag: 'wx' })
  return { imageId: `sha512-${createHash('sha512').update(tar).digest('hex')}` }
}

async function writeStreaming(plan: ImagePlan, output: string, options: EngineOptions): Promise<EngineResult> {
  const pack = tarPack()
  const hash = createHash('sha512')
  const hashTap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk)
      done(null, chunk)
    },
  })
  const writing = pipeline(
    pack,
    hashTap,
    compressor(options.compression, { pigz: options.pigz, signal: options.signal }),
    createWriteStream(output, { flags: 'wx' }),
    { signal: options.signal },
  )
  const packing = packImage(pack, plan).then(() => pack.finalize())
  packing.catch((error: Error) => pack.destroy(error))
  await Promise.all([packing, writing])
  return { imageId: `sha512-${hash.digest('hex')}` }
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

async function packImage(pack: Pack, plan: ImagePlan): Promise<void> {
  await addEntry(pack, rootHeader('manifest', 'file', 0o644), JSON.stringify(imageManifest(plan)))
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

/** Adds a file tree as it is on disk: modes, times and symlinks kept, hardlinked files stored once. */
async function packTree(pack: Pack, path: string, name: string, hardlinks: Map<string, string>): Promise<void> {
  const info = await lstat(path)
  const header: Header = { name, mode: info.mode & 0o7777, uid: 0, gid: 0, mtime: info.mtime }
  if (info.isDirectory()) {
    await addEntry(pack, { ...header, type: 'directory' })
    for (const child of (await readdir(path)).sort()) {
      await packTree(pack, `${path}/${child}`, `${name}/${child}`, hardlinks)
    }
  } else if (info.isSymbolicLink()) {
    await addEntry(pack, { ...header, type: 'symlink', linkname: await readlink(path) })
  } else if (info.isFile()) {
    const inode = `${info.dev}:${info.ino}`
    const firstName = info.nlink > 1 ? hardlinks.get(inode) : undefined
    if (firstName) return addEntry(pack, { ...header, type: 'link', linkname: firstName })
    if (info.nlink > 1) hardlinks.set(inode, name)
    if (info.size <= SMALL_FILE) return addEntry(pack, { ...header, type: 'file' }, await readFile(path))
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
