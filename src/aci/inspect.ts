// Reading an image back whole: its manifest, what lies at the top of its tar, its ID. One pass over
// the decompressed tar serves all three.
import { createHash } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { extract } from 'tar-stream'
import { isStorePath } from '../nix/selectors.js'
import { UserError, messageOf } from '../util/errors.js'
import type { Compression } from './compression.js'
import { compressionOf, openTar } from './read.js'

export interface ImageContents {
  manifest: Record<string, unknown>
  /** First path components of the tar's entries (`manifest`, `rootfs`, and anything that should not be there). */
  topLevel: string[]
  /** Whether the rootfs carries a Nix store (a fat image). */
  hasStore: boolean
  entries: number
  size: number
  compression: Compression
  imageId: string
}

export async function readImage(file: string): Promise<ImageContents> {
  const size = (
    await stat(file).catch(() => {
      throw new UserError(`no such image: ${file}`)
    })
  ).size
  const compression = await compressionOf(file)
  const tar = await openTar(file, compression)
  const hash = createHash('sha512')
  const topLevel = new Set<string>()
  let manifestText: string | undefined
  let hasStore = false
  let entries = 0
  try {
    const reader = extract()
    tar.on('data', (chunk: Buffer) => hash.update(chunk))
    tar.on('error', (error) => reader.destroy(error))
    tar.pipe(reader)
    for await (const entry of reader) {
      entries++
      const name = entry.header.name.replace(/^\.\//, '')
      topLevel.add(name.split('/')[0]!)
      if (isStorePath(name.slice('rootfs'.length))) hasStore = true
      if (name === 'manifest') manifestText = (await collect(entry)).toString('utf8')
      else entry.resume()
    }
  } catch (error) {
    const kind = compression === 'none' ? 'uncompressed' : compression
    throw new UserError(`${file} is not a readable ACI (${kind} tar): ${messageOf(error)}`)
  }
  if (entries === 0) throw new UserError(`${file} is not a readable ACI: it holds no tar entries`)
  if (manifestText === undefined) throw new UserError(`${file} is not an ACI: it has no manifest`)
  let manifest: Record<string, unknown>
  try {
    manifest = JSON.parse(manifestText) as Record<string, unknown>
  } catch (error) {
    throw new UserError(`${file} has a manifest that is not JSON: ${messageOf(error)}`)
  }
  return {
    manifest,
    topLevel: [...topLevel].sort(),
    hasStore,
    entries,
    size,
    compression,
    imageId: `sha512-${hash.digest('hex')}`,
  }
}

async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}
