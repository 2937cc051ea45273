// The compressions appc allows for an ACI: one entry per algorithm, with the magic bytes that tell it
// apart (as rkt does), the program it needs, and the streams that compress and decompress it.
import { spawn } from 'node:child_process'
import { createReadStream } from 'node:fs'
import { Duplex, PassThrough, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip, createGzip } from 'node:zlib'
import { killOnAbort } from '../util/cancel.js'
import { UserError } from '../util/errors.js'
import { findOnPath } from '../util/exec.js'

export const COMPRESSIONS = ['gzip', 'xz', 'bzip2', 'none'] as const
export type Compression = (typeof COMPRESSIONS)[number]
export const DEFAULT_COMPRESSION: Compression = 'gzip'

/** gzip level 6: the level `gzip` and acbuild use by default. */
export const GZIP_LEVEL = 6

/** Bytes read from the start of a file to tell the compressions apart (a tar's magic is at 257). */
export const MAGIC_BYTES = 262

interface CompressionFormat {
  /** Whether a file starting with `head` is in this format. */
  magic(head: Buffer): boolean
  /** The program compressing and decompressing it, when zlib does not, and the Debian package that has it. */
  program?: { command: string; debianPackage: string }
  /** `pigz`: the path of the binary, when the caller wants parallel gzip and has found it. `signal` stops the program. */
  compress(options: { pigz?: string; signal: AbortSignal }): Duplex
  decompress(file: string, signal?: AbortSignal): Readable
}

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])

export const COMPRESSION_FORMATS: Record<Compression, CompressionFormat> = {
  gzip: {
    magic: (head) => head[0] === 0x1f && head[1] === 0x8b,
    // `-n` keeps names and times out of pigz's header, so output stays reproducible.
    compress: ({ pigz, signal }) =>
      pigz ? filterProcess(pigz, [`-${GZIP_LEVEL}`, '-n', '-c'], signal) : createGzip({ level: GZIP_LEVEL }),
    decompress: (file, signal) => {
      const gunzip = createGunzip()
      // pipeline destroys gunzip with the read error, so the reader sees it
      pipeline(createReadStream(file), gunzip, { signal }).catch(() => undefined)
      return gunzip
    },
  },
  xz: {
    magic: (head) => head.subarray(0, 6).equals(XZ_MAGIC),
    program: { command: 'xz', debianPackage: 'xz-utils' },
    compress: ({ signal }) => filterProcess('xz', ['-6', '-c', '-T1'], signal),
    decompress: (file, signal) => decompressProcess('xz', file, signal),
  },
  bzip2: {
    magic: (head) => head.subarray(0, 3).toString('latin1') === 'BZh',
    program: { command: 'bzip2', debianPackage: 'bzip2' },
    compress: ({ signal }) => filterProcess('bzip2', ['-9', '-c'], signal),
    decompress: (file, signal) => decompressProcess('bzip2', file, signal),
  },
  none: {
    magic: (head) => head.subarray(257, 262).toString('latin1') === 'ustar',
    compress: () => new PassThrough(),
    decompress: (file, signal) => createReadStream(file, { signal }),
  },
}

/** The compression whose magic bytes `head` starts with, or undefined for none of appc's. */
export function compressionOfHead(head: Buffer): Compression | undefined {
  return COMPRESSIONS.find((compression) => COMPRESSION_FORMATS[compression].magic(head))
}

/** A stream that compresses what is written to it. */
export function compressor(compression: Compression, options: { pigz?: string; signal: AbortSignal }): Duplex {
  return COMPRESSION_FORMATS[compression].compress(options)
}

/** Refuses, before any work, a compression whose program this host lacks. */
export function requireCompressor(compression: Compression): void {
  const { program } = COMPRESSION_FORMATS[compression]
  if (program && !findOnPath(program.command))
    throw new UserError(
      `--compression ${compression}: ${program.command} is not installed (not on PATH); install it with: sudo apt-get install ${program.debianPackage}`,
    )
}

/** A program reading stdin and writing stdout, as a Duplex that fails when the program does. */
function filterProcess(command: string, args: string[], signal: AbortSignal): Duplex {
  const child = killOnAbort(spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], signal }), signal)
  const output = new PassThrough()
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text))
  child.stdout.pipe(output, { end: false })
  const duplex = Duplex.from({ writable: child.stdin, readable: output })
  // When the pipeline fails downstream (a full disk), the program must not stay blocked on a pipe.
  duplex.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill()
  })
  const fail = (error: Error) => duplex.destroy(error)
  child.on('error', (error) => fail(new Error(`cannot run ${command}: ${error.message}`)))
  child.on('close', (code) => {
    if (code === 0) output.end()
    else fail(new Error(`${command} exited with ${code}: ${stderr.trim()}`))
  })
  return duplex
}

/** `command -dc file`: the reader sees a missing or failing decompressor as an error on the stream it reads. */
function decompressProcess(command: string, file: string, signal: AbortSignal | undefined): Readable {
  const child = killOnAbort(spawn(command, ['-dc', file], { stdio: ['ignore', 'pipe', 'ignore'], signal }), signal)
  child.on('error', (error) => child.stdout.destroy(new Error(`cannot run ${command}: ${error.message}`)))
  child.on('close', (code) => {
    if (code !== 0 && code !== null) child.stdout.destroy(new Error(`${command} exited with ${code}`))
  })
  return child.stdout
}
