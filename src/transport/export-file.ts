// The stream `nix2aci export` writes and `nix2aci import` reads (a file is the stream saved): one thin
// image with what it needs to run on another host. In this order:
//   a POSIX tar of three entries, ended as tars end (two zero blocks; `tar -tvf FILE` lists it):
//     nix2aci-export.json  the header: format, version, image name, kind, image ID, user environment
//     image.aci            the image
//     image.mounts         its volumes (the .mounts file)
//   then `nix-store --export` of the closure, to the end of the stream: nix-store writes it straight
//   into the file or pipe and `nix-store --import` reads it straight from there, so it needs no size up
//   front and never passes through node. A cut closure is refused by nix-store --import itself.
// This module owns that layout; nothing else knows it.
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  read as readCallback,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs'
import { isatty } from 'node:tty'
import { promisify } from 'node:util'
import { basename, dirname, join } from 'node:path'
import { STORE_DIR, isStorePath } from '../nix/selectors.js'
import { UserError, messageOf } from '../util/errors.js'

export const EXPORT_FORMAT = 'nix2aci-export'
export const EXPORT_VERSION = 3

const readAsync = promisify(readCallback)

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
}

const ENTRIES = ['nix2aci-export.json', 'image.aci', 'image.mounts'] as const
const BLOCK = 512
const END_OF_ARCHIVE = 2 * BLOCK
const STORE_PREFIX = `${STORE_DIR}/`.length
/** The name `-` gives standard input or output in messages. */
const STANDARD = { input: 'the standard input', output: 'the standard output' }

/**
 * Writes the export stream to `file`, or to standard output when `file` is `-`. A file is written
 * beside itself and renamed into place once complete, so that it is whole or untouched. `writeClosure`
 * gets a descriptor positioned where the closure goes and writes it there (a child's stdout).
 */
export async function writeExportFile(
  file: string,
  header: ExportHeader,
  image: string,
  mounts: string,
  writeClosure: (fd: number) => Promise<void>,
): Promise<void> {
  const toStdout = file === '-'
  const shown = toStdout ? STANDARD.output : file
  const temporary = join(dirname(file), `.${basename(file)}.exporting-${process.pid}`)
  let fd: number
  try {
    fd = toStdout ? standardDescriptor(1, 'w') : openSync(temporary, 'wx')
  } catch (error) {
    throw error instanceof UserError ? error : new UserError(`cannot write ${shown}: ${messageOf(error)}`)
  }
  try {
    writeEntry(fd, ENTRIES[0], Buffer.from(`${JSON.stringify(header)}\n`))
    writeEntry(fd, ENTRIES[1], readFileSync(image))
    writeEntry(fd, ENTRIES[2], readFileSync(mounts))
    writeAll(fd, Buffer.alloc(END_OF_ARCHIVE))
    await writeClosure(fd)
    if (fd !== 1) closeSync(fd)
    if (!toStdout) renameSync(temporary, file)
  } catch (error) {
    try {
      if (fd !== 1) closeSync(fd)
    } catch {
      // closed already
    }
    if (!toStdout) rmSync(temporary, { force: true })
    const code = (error as NodeJS.ErrnoException).code
    if (code && ['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EIO', 'EPIPE'].includes(code))
      throw new UserError(`cannot write ${shown}: ${messageOf(error)}`)
    throw error
  }
}

/**
 * Standard input or output as a descriptor of its own for a pipe (node makes fd 0 and 1 non-blocking,
 * which nix-store, sharing them, would trip on), else the descriptor itself. A terminal is refused.
 */
function standardDescriptor(fd: 0 | 1, flags: 'r' | 'w'): number {
  const info = fstatSync(fd)
  if (isatty(fd))
    throw new UserError(`${fd === 0 ? STANDARD.input : STANDARD.output} is a terminal: an export stream is binary`)
  return info.isFIFO() ? openSync(`/proc/self/fd/${fd}`, flags) : fd
}

function writeAll(fd: number, data: Buffer): void {
  for (let done = 0; done < data.length;) done += writeSync(fd, data, done)
}

function writeEntry(fd: number, name: string, data: Buffer): void {
  writeAll(fd, ustarHeader(name, data.length))
  writeAll(fd, data)
  writeAll(fd, Buffer.alloc(padding(data.length)))
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

/** What import does with each part, in the stream's order; each settles before the next part is read. */
export interface ExportFileReader {
  header(header: ExportHeader): Promise<void>
  image(data: Buffer): Promise<void>
  mounts(data: Buffer): Promise<void>
  /** `fd` is positioned at the closure's first byte (a child's stdin reads on from there to the end). */
  closure(fd: number): Promise<void>
}

/** More than any header, image or .mounts of a thin image takes: a larger entry is not read into memory. */
const MAX_ENTRY_BYTES = 256 * 1024 * 1024

/**
 * Reads an export stream from `file`, or from standard input when `file` is `-`, part by part,
 * refusing in one line a stream that is not one (foreign) or ends early (truncated) before its closure
 * goes to the reader. The closure is not read here at all: the reader's child reads it from the
 * descriptor itself, and `truncatedClosure` names a closure it found cut short.
 */
export async function readExportFile(file: string, reader: ExportFileReader): Promise<void> {
  const fromStdin = file === '-'
  const shown = fromStdin ? STANDARD.input : file
  const notExport = (why: string) => new UserError(`${shown} is not a nix2aci export file: ${why}`)
  const truncated = (where: string) => new UserError(`${shown} is truncated: it ends in ${where}`)
  let fd: number
  try {
    fd = fromStdin ? standardDescriptor(0, 'r') : openSync(file, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch (error) {
    if (error instanceof UserError) throw error
    const { code } = error as NodeJS.ErrnoException
    throw new UserError(code === 'ENOENT' ? `no such file: ${file}` : `cannot read ${shown}: ${messageOf(error)}`)
  }
  try {
    if (!fromStdin && !fstatSync(fd).isFile()) throw notExport('it is not a regular file')
    // Reads exactly `length` bytes from the descriptor's own offset (a pipe has no other), so that a
    // child given it reads on from where this stops; in node's thread pool, so signals are still heard.
    const read = async (length: number, where: string, atStart = false) => {
      const buffer = Buffer.alloc(length)
      let got = 0
      while (got < length) {
        const { bytesRead } = await readAsync(fd, buffer, got, length - got, null)
        if (bytesRead === 0) {
          if (atStart) throw notExport(got === 0 ? 'it is empty' : 'it is not a tar archive')
          throw truncated(where)
        }
        got += bytesRead
      }
      return buffer
    }
    for (const [index, expected] of ENTRIES.entries()) {
      const entry = parseUstarHeader(await read(BLOCK, `the header of ${expected}`, index === 0))
      if (!entry) throw notExport(index === 0 ? 'it is not a tar archive' : `the header of ${expected} is damaged`)
      if (entry.name !== expected)
        throw notExport(index === 0 ? `it starts with '${entry.name}'` : `unexpected entry '${entry.name}'`)
      if (entry.size > MAX_ENTRY_BYTES) throw notExport(`its ${expected} is ${entry.size} bytes`)
      const data = await read(entry.size, expected)
      await read(padding(entry.size), expected)
      if (index === 0) await reader.header(parseHeader(data.toString('utf8'), notExport))
      else await (index === 1 ? reader.image(data) : reader.mounts(data))
    }
    const end = await read(END_OF_ARCHIVE, 'the end of its archive')
    if (end.some((byte) => byte !== 0)) throw notExport(`more than ${ENTRIES.length} entries before the closure`)
    await reader.closure(fd)
  } finally {
    if (fd !== 0) closeSync(fd)
  }
}

/** The error for a closure that `nix-store --import` found cut short (its "unexpected end-of-file"). */
export function truncatedClosure(file: string): UserError {
  return new UserError(`${file === '-' ? STANDARD.input : file} is truncated: it ends in the closure`)
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
      `export file version ${String(header.version)} is not one this nix2aci reads (${EXPORT_VERSION}): export it again`,
    )
  const path = header.userEnvironment
  if (
    typeof header.name !== 'string' ||
    header.kind !== 'thin' ||
    typeof header.imageId !== 'string' ||
    typeof path !== 'string' ||
    !isStorePath(path) ||
    /\/|^\.\.?$/.test(path.slice(STORE_PREFIX))
  )
    throw notExport('its header lacks a field or has a wrong one')
  return header as ExportHeader
}
