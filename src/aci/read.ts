// Opening an .aci to read it: a regular file, its compression from the magic bytes, its tar decompressed.
import { createHash } from 'node:crypto'
import { constants } from 'node:fs'
import { open } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { UserError } from '../util/errors.js'
import { COMPRESSION_FORMATS, MAGIC_BYTES, compressionOfHead, type Compression } from './compression.js'

/** The path names no file to read as an image (nothing, a directory, a device): no reader can say more. */
export class NotAnImageFile extends UserError {}

export interface OpenedImage {
  size: number
  compression: Compression
  /** The uncompressed tar. */
  tar: Readable
}

/**
 * Opens an image for reading. Anything but a regular file (a directory, `/dev/zero`, a FIFO) is
 * refused before a byte is read, so a reader never waits on a stream without end.
 */
export async function openImage(file: string, signal?: AbortSignal): Promise<OpenedImage> {
  // Non-blocking, so that opening a FIFO does not wait for a writer; a regular file reads as ever.
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK).catch((error: NodeJS.ErrnoException) => {
    throw new NotAnImageFile(
      error.code === 'ENOENT' ? `no such image: ${file}` : `cannot read ${file}: ${error.message}`,
    )
  })
  let size: number
  let compression: Compression | undefined
  try {
    const info = await handle.stat()
    if (!info.isFile())
      throw new NotAnImageFile(
        `${file} is not an image: it is ${info.isDirectory() ? 'a directory' : 'not a regular file'}`,
      )
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(MAGIC_BYTES), 0, MAGIC_BYTES, 0)
    size = info.size
    compression = compressionOfHead(buffer.subarray(0, bytesRead))
  } finally {
    await handle.close()
  }
  if (!compression) throw new UserError(`${file} is not a readable ACI: it is neither gzip, bzip2, xz nor a tar`)
  // Returned at once, with no await between: the caller listens for the stream's errors before any can come.
  return { size, compression, tar: COMPRESSION_FORMATS[compression].decompress(file, signal) }
}

/** The image ID rkt gives an image: `sha512-` of its uncompressed tar. */
export async function imageIdOf(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha512')
  await pipeline((await openImage(file, signal)).tar, hash, { signal })
  return `sha512-${hash.digest('hex')}`
}
