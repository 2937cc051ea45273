// Reading an ACI as rkt does: compression told by magic bytes, the manifest, the rootfs unpacked.
import { execFile, spawn } from 'node:child_process'
import { createReadStream, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { promisify } from 'node:util'
import { renderDependencies } from './render.js'

const execFileAsync = promisify(execFile)

export interface MountPoint {
  name: string
  path: string
  readOnly?: boolean
}

interface App {
  exec?: string[]
  user: string
  group: string
  environment?: Array<{ name: string; value: string }>
  workingDirectory?: string
  mountPoints?: MountPoint[]
  [key: string]: unknown
}

export interface Dependency {
  imageName: string
  imageID?: string
  labels?: Array<{ name: string; value: string }>
}

export interface ImageManifest {
  acKind: string
  acVersion: string
  name: string
  labels?: Array<{ name: string; value: string }>
  app?: App
  dependencies?: Dependency[]
  pathWhitelist?: string[]
  [key: string]: unknown
}

export type Compression = 'gzip' | 'bzip2' | 'xz' | 'none'

/** The compressions the appc spec allows, told apart by magic bytes as rkt does; anything else is refused. */
export async function detectCompression(image: string): Promise<Compression> {
  const file = await open(image, 'r')
  const head = Buffer.alloc(262)
  try {
    await file.read(head, 0, head.length, 0)
  } finally {
    await file.close()
  }
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip'
  if (head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2'
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz'
  if (head.subarray(257, 262).toString('latin1') === 'ustar') return 'none'
  throw new Error(`${image}: not an ACI (neither a tar nor a gzip, bzip2 or xz one)`)
}

export const TAR_FLAG: Record<Compression, string[]> = { gzip: ['-z'], bzip2: ['-j'], xz: ['-J'], none: [] }

const DECOMPRESSOR: Record<Exclude<Compression, 'none'>, string> = { gzip: 'gzip', bzip2: 'bzip2', xz: 'xz' }

/** The image's tar, uncompressed: the bytes whose sha512 is its image ID. */
export function uncompressedTar(image: string, compression: Compression): Readable {
  if (compression === 'none') return createReadStream(image)
  const child = spawn(DECOMPRESSOR[compression], ['-dc', image], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text))
  child.on('close', (status) => {
    if (status !== 0) child.stdout.destroy(new Error(`${image}: ${DECOMPRESSOR[compression]} failed: ${stderr.trim()}`))
  })
  return child.stdout
}

/** The image's manifest, read without unpacking the rootfs. */
export async function readAci(image: string): Promise<{ manifest: ImageManifest; compression: Compression }> {
  const compression = await detectCompression(image)
  const { stdout } = await execFileAsync('tar', ['-x', ...TAR_FLAG[compression], '-O', '-f', image, 'manifest'], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  }).catch((error: Error) => {
    throw new Error(`${image}: no manifest: ${error.message}`)
  })
  return { manifest: parseManifest(image, stdout), compression }
}

function parseManifest(image: string, text: string): ImageManifest {
  const manifest = JSON.parse(text) as ImageManifest
  if (manifest.acKind !== 'ImageManifest')
    throw new Error(`${image}: manifest acKind is ${manifest.acKind}, not ImageManifest`)
  return manifest
}

/** As root tar keeps owners and modes; --numeric-owner stops it mapping names through the host's /etc/passwd. */
export const EXTRACT_FLAGS = ['--numeric-owner', '-p']

export interface UnpackedAci {
  dir: string
  rootfs: string
  manifest: ImageManifest
  compression: Compression
  /** Removes the unpacked image; safe to call twice. */
  remove(): void
}

/**
 * Unpacks the image into a fresh directory under `parent`, keeping symlinks, modes and numeric owners.
 * An image with dependencies has them rendered under its rootfs as rkt does (render.ts), found
 * among the .aci files of `images` (directories).
 */
export async function unpackAci(
  image: string,
  parent = tmpdir(),
  images: readonly string[] = [],
): Promise<UnpackedAci> {
  const dir = mkdtempSync(join(parent, 'nix2aci-run-'))
  const remove = () => rmSync(dir, { recursive: true, force: true })
  try {
    const compression = await detectCompression(image)
    await execFileAsync('tar', ['-x', ...TAR_FLAG[compression], ...EXTRACT_FLAGS, '-f', image, '-C', dir])
    const manifest = parseManifest(image, readFileSync(join(dir, 'manifest'), 'utf8'))
    // The image's own files are down first, so they win, as the upper image's do in rkt.
    if (manifest.dependencies?.length) await renderDependencies(image, images, dir)
    return { dir, rootfs: join(dir, 'rootfs'), manifest, compression, remove }
  } catch (error) {
    remove()
    throw error
  }
}
