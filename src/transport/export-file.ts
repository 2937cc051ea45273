// The file `nix2aci export` writes and `nix2aci import` reads: one thin image with what it needs to run
// on another host. A POSIX tar (`tar -tvf FILE` lists it; `tar -xOf FILE closure.nar-export |
// nix-store --import` imports by hand) of four entries, in this order:
//   nix2aci-export.json  the header: format, version, image name, kind, image ID, user environment, closure
//   image.aci            the image
//   image.mounts         its volumes (the .mounts file)
//   closure.nar-export   `nix-store --export` of the closure, streamed by nix-store straight into the file:
//                        its tar header is written once nix-store is done and its size is known.
// Both ends read and write the tar headers themselves: the closure never passes through node.
// This module owns that layout; nothing else knows it.
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { STORE_DIR, isStorePath } from '../nix/selectors.js'
import { UserError, messageOf } from '../util/errors.js'

export const EXPORT_FORMAT = 'nix2aci-export'
export const EXPORT_VERSION = 1

export interface ExportHeader {
  format: typeof EXPORT_FORMAT
  version: typeof EXPORT_VERSION
  /** The image's name (its manifest's), which names its files on import. */
  name: string
  kind: 'thin'
  /** rkt's image ID of image.aci, checked on import. */
  imageId: string
  /** What the image's profile points at: the GC root import registers. */
  userEnvironment: string
  /** Every store path closure.nar-export holds (`nix-store -qR` of the user environment). */
  closure: string[]
}

const ENTRIES = ['nix2aci-export.json', 'image.aci', 'image.mounts', 'closure.nar-export'] as const
const BLOCK = 512
const STORE_PREFIX = `${STORE_DIR}/`.length

/**
 * Writes the export file: a temporary file beside `file`, renamed into place once complete, so that
 * `file` is whole or untouched. `writeClosure` gets a descriptor positioned where the closure goes and
 * writes it there (a child's stdout), sequentially.
 */
export async function writeExportFile(
  file: string,
  header: ExportHeader,
  image: string,
  mounts: string,
  writeClosure: (fd: number) => Promise<void>,
): Promise<void> {
  const temporary = join(dirname(file), `.${basename(file)}.exporting-${process.pid}`)
  let fd: number
  try {
    fd = openSync(temporary, 'wx')
  } catch (error) {
    throw new UserError(`cannot write ${file}: ${messageOf(error)}`)
  }
  try {
    writeEntry(fd, ENTRIES[0], Buffer.from(`${JSON.stringify(header)}\n`))
    writeEntry(fd, ENTRIES[1], readFileSync(image))
    writeEntry(fd, ENTRIES[2], readFileSync(mounts))
    const closureHeaderAt = fstatSync(fd).size
    writeSync(fd, Buffer.alloc(BLOCK))
    await writeClosure(fd)
    const closureSize = fstatSync(fd).size - closureHeaderAt - BLOCK
    writeSync(fd, Buffer.alloc(padding(closureSize) + 2 * BLOCK)) // the entry's padding, then the end of the archive
    writeSync(fd, ustarHeader(ENTRIES[3], closureSize), 0, BLOCK, closureHeaderAt)
    closeSync(fd)
    renameSync(temporary, file)
  } catch (error) {
    try {
      closeSync(fd)
    } catch {
      // closed already
    }
    rmSync(temporary, { force: true })
    const code = (error as NodeJS.ErrnoException).code
    if (code && ['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EIO'].includes(code))
      throw new UserError(`cannot write ${file}: ${messageOf(error)}`)
    throw error
  }
}

function writeEntry(fd: number, name: string, data: Buffer): void {
  writeSync(fd, ustarHeader(name, data.length))
  writeSync(fd, data)
  writeSync(fd, Buffer.alloc(padding(data.length)))
}

const padding = (size: number) => (BLOCK - (size % BLOCK)) % BLOCK

/** A ustar header for a regular file, mode 0644, owner 0:0, time 0; sizes of 8 GiB and more in GNU base-256. */
function ustarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(BLOCK)
  const octal = (value: number, at: number, width: number) =>
    header.write(`${value.toString(8).padStart(width - 1, '0')}\0`, at, width, 'ascii')
  header.write(name, 0, 100, 'utf8')
  octal(0o644, 100, 8)
  octal(0, 108, 8)
  octal(0, 116, 8)
  if (size < 8 ** 11) octal(size, 124, 12)
  else {
    header[124] = 0x80
    for (let i = 135, rest = BigInt(size); i > 124; i--, rest >>= 8n) header[i] = Number(rest & 0xffn)
  }
  octal(0, 136, 12)
  header.write('0', 156, 1, 'ascii')
  header.write('ustar\0' + '00', 257, 8, 'ascii')
  header.fill(' ', 148, 156) // the checksum is computed with its own field as spaces
  let sum = 0
  for (const byte of header) sum += byte
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii')
  return header
}

/** What import does with each part, in the file's order; each settles before the next part is read. */
export interface ExportFileReader {
  header(header: ExportHeader): Promise<void>
  image(data: Buffer): Promise<void>
  mounts(data: Buffer): Promise<void>
  /** `fd` is positioned at the closure's first byte (a child's stdin reads on from there); `size` bytes follow. */
  closure(fd: number, size: number): Promise<void>
}

/** More than any header, image or .mounts of a thin image takes: a larger entry is not read into memory. */
const MAX_ENTRY_BYTES = 256 * 1024 * 1024

/**
 * Reads an export file part by part, refusing in one line a file that is not one (foreign) or ends
 * early (truncated) before its closure goes to the reader. The closure is not read here at all: the
 * reader's child reads it from the file itself.
 */
export async function readExportFile(file: string, reader: ExportFileReader): Promise<void> {
  const notExport = (why: string) => new UserError(`${file} is not a nix2aci export file: ${why}`)
  const truncated = (where: string) => new UserError(`${file} is truncated: it ends in ${where}`)
  let fd: number
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch (error) {
    const { code } = error as NodeJS.ErrnoException
    throw new UserError(code === 'ENOENT' ? `no such file: ${file}` : `cannot read ${file}: ${messageOf(error)}`)
  }
  try {
    const info = fstatSync(fd)
    if (!info.isFile()) throw notExport('it is not a regular file')
    let position = 0
    // Reads from the descriptor's own offset, so that a child given it reads on from where this stops.
    const read = (length: number, where: string) => {
      const buffer = Buffer.alloc(length)
      let got = 0
      while (got < length) {
        const n = readSync(fd, buffer, got, length - got, null)
        if (n === 0) throw truncated(where)
        got += n
      }
      position += length
      return buffer
    }
    for (const [index, expected] of ENTRIES.entries()) {
      if (index === 0 && info.size < BLOCK) throw notExport(info.size === 0 ? 'it is empty' : 'it is not a tar archive')
      const entry = parseUstarHeader(read(BLOCK, `the header of ${expected}`))
      if (!entry) throw notExport(index === 0 ? 'it is not a tar archive' : `the header of ${expected} is damaged`)
      if (entry.name !== expected)
        throw notExport(index === 0 ? `it starts with '${entry.name}'` : `unexpected entry '${entry.name}'`)
      if (index === ENTRIES.length - 1) {
        if (position + entry.size > info.size) throw truncated(expected)
        await reader.closure(fd, entry.size)
        break
      }
      if (entry.size > MAX_ENTRY_BYTES) throw notExport(`its ${expected} is ${entry.size} bytes`)
      const data = read(entry.size, expected)
      read(padding(entry.size), expected)
      if (index === 0) await reader.header(parseHeader(data.toString('utf8'), notExport))
      else await (index === 1 ? reader.image(data) : reader.mounts(data))
    }
  } finally {
    closeSync(fd)
  }
}

/** A regular file's name and size from a ustar header, or undefined when its checksum or magic is wrong. */
function parseUstarHeader(block: Buffer): { name: string; size: number } | undefined {
  if (block.toString('ascii', 257, 262) !== 'ustar') return undefined
  const stored = parseInt(block.toString('ascii', 148, 156).replace(/\0.*$/, '').trim(), 8)
  let sum = 0
  for (const [i, byte] of block.entries()) sum += i >= 148 && i < 156 ? 0x20 : byte
  if (stored !== sum) return undefined
  const name = block.toString('utf8', 0, 100).replace(/\0.*$/s, '')
  let size = 0
  if (block[124]! & 0x80) for (let i = 125; i < 136; i++) size = size * 256 + block[i]!
  else size = parseInt(block.toString('ascii', 124, 136).replace(/\0.*$/, '').trim() || '0', 8)
  return Number.isSafeInteger(size) ? { name, size } : undefined
}

function parseHeader(text: string, notExport: (why: string) => UserError): ExportHeader {
  let header: Partial<ExportHeader>
  try {
    header = JSON.parse(text) as Partial<ExportHeader>
  } catch {
    throw notExport('its header is not JSON')
  }
  if (header.format !== EXPORT_FORMAT) throw notExport(`its header's format is not ${EXPORT_FORMAT}`)
  if (header.version !== EXPORT_VERSION)
    throw new UserError(
      `export file version ${String(header.version)} is not one this nix2aci reads (${EXPORT_VERSION})`,
    )
  const paths = [header.userEnvironment, ...(header.closure ?? [])]
  if (
    typeof header.name !== 'string' ||
    header.kind !== 'thin' ||
    typeof header.imageId !== 'string' ||
    !Array.isArray(header.closure) ||
    !paths.every(
      (path) => typeof path === 'string' && isStorePath(path) && !/\/|^\.\.?$/.test(path.slice(STORE_PREFIX)),
    ) ||
    !header.closure.includes(header.userEnvironment!)
  )
    throw notExport('its header lacks a field or has a wrong one')
  return header as ExportHeader
}
