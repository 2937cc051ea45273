// Reading an .aci back: its compression from the magic bytes, and the uncompressed tar stream.
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import { killOnAbort } from '../util/cancel.js'
import type { Compression } from './compression.js'

export async function compressionOf(file: string): Promise<Compression> {
  const handle = await open(file, 'r')
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(6), 0, 6, 0)
    const magic = buffer.subarray(0, bytesRead)
    if (magic[0] === 0x1f && magic[1] === 0x8b) return 'gzip'
    if (magic.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz'
    if (magic.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2'
    return 'none'
  } finally {
    await handle.close()
  }
}

/** The image's tar, decompressed; `known` saves reading the magic bytes again. `signal` stops the reading. */
export async function openTar(file: string, known?: Compression, signal?: AbortSignal): Promise<Readable> {
  const compression = known ?? (await compressionOf(file))
  if (compression === 'none') return createReadStream(file, { signal })
  if (compression === 'gzip') {
    const gunzip = createGunzip()
    // pipeline destroys gunzip with the read error, so the reader sees it
    pipeline(createReadStream(file), gunzip, { signal }).catch(() => undefined)
    return gunzip
  }
  const child = killOnAbort(spawn(compression, ['-dc', file], { stdio: ['ignore', 'pipe', 'ignore'], signal }), signal)
  // The reader sees a missing or failing decompressor as an error on the stream it reads.
  child.on('error', (error) => child.stdout.destroy(new Error(`cannot run ${compression}: ${error.message}`)))
  child.on('close', (code) => {
    if (code !== 0 && code !== null) child.stdout.destroy(new Error(`${compression} exited with ${code}`))
  })
  return child.stdout
}

/** The image ID rkt gives an image: `sha512-` of its uncompressed tar. */
export async function imageIdOf(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha512')
  await pipeline(await openTar(file, undefined, signal), hash, { signal })
  return `sha512-${hash.digest('hex')}`
}
