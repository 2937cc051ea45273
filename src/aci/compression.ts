// The compressions appc allows for an ACI: one entry per algorithm, with the magic bytes that tell it
// apart (as rkt does), the program it needs, and the streams that compress and decompress it.
import { spawn } from 'node:child_process'
import { createReadStream } from 'node:fs'
import { availableParallelism } from 'node:os'
import { Duplex, PassThrough, Transform, Writable, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { constants as zlibConstants, crc32, createGunzip, deflateRaw } from 'node:zlib'
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

interface CompressOptions {
  pigz?: string
  signal: AbortSignal
  /**
   * An open file the output is bound for: a program then writes into it itself, sparing Node a copy
   * of every byte in and out of a pipe, and the stream's readable side ends with nothing on it.
   */
  into?: number
}

interface CompressionFormat {
  /** Whether a file starting with `head` is in this format. */
  magic(head: Buffer): boolean
  /** The program compressing and decompressing it, when zlib does not, and the Debian package that has it. */
  program?: { command: string; debianPackage: string }
  /** `pigz`: the path of the binary, when the caller wants parallel gzip and has found it. `signal` stops the program. */
  compress(options: CompressOptions): Duplex
  decompress(file: string, signal?: AbortSignal): Readable
}

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])

export const COMPRESSION_FORMATS: Record<Compression, CompressionFormat> = {
  gzip: {
    magic: (head) => head[0] === 0x1f && head[1] === 0x8b,
    // `-n` keeps names and times out of pigz's header, so output stays reproducible.
    compress: ({ pigz, signal, into }) =>
      pigz ? filterProcess(pigz, [`-${GZIP_LEVEL}`, '-n', '-c'], signal, into) : parallelGzip(availableParallelism()),
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
    compress: ({ signal, into }) => filterProcess('xz', ['-6', '-c', '-T1'], signal, into),
    decompress: (file, signal) => decompressProcess('xz', file, signal),
  },
  bzip2: {
    magic: (head) => head.subarray(0, 3).toString('latin1') === 'BZh',
    program: { command: 'bzip2', debianPackage: 'bzip2' },
    compress: ({ signal, into }) => filterProcess('bzip2', ['-9', '-c'], signal, into),
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
export function compressor(compression: Compression, options: CompressOptions): Duplex {
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

/** Deflate's window: a block primed with the 32 KiB before it compresses as it would in one stream. */
const DEFLATE_WINDOW = 32 * 1024
/** Uncompressed bytes per deflate job: large enough that a job's thread hop costs nothing beside it. */
const GZIP_BLOCK = 1 << 20
/** The header of a gzip member with no name and no time (as `gzip -n` writes it), from a Unix host. */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])

/**
 * gzip at GZIP_LEVEL by node's zlib on up to `concurrency` threadpool threads, as pigz does it: the
 * data is cut into fixed blocks, each deflated on its own but primed with the window before it and
 * ended on a byte boundary (a sync flush), so the blocks concatenate into one deflate stream in one
 * gzip member. The output depends on the data only, never on the concurrency or the timing.
 */
function parallelGzip(concurrency: number): Transform {
  let held: Buffer[] = []
  let heldBytes = 0
  let window: Buffer | undefined
  let crc = 0
  let size = 0
  const jobs: Promise<Buffer>[] = []
  const deflate = (block: Buffer, last: boolean): Promise<Buffer> => {
    const dictionary = window
    // Every block but the last is whole, so the window before a block is in the block before it.
    window = block.subarray(Math.max(0, block.length - DEFLATE_WINDOW))
    crc = crc32(block, crc)
    size += block.length
    const options = {
      level: GZIP_LEVEL,
      finishFlush: last ? zlibConstants.Z_FINISH : zlibConstants.Z_SYNC_FLUSH,
      // Room for the whole output at once: one trip to the threadpool per block.
      chunkSize: block.length + (block.length >> 8) + 1024,
      ...(dictionary ? { dictionary } : {}),
    }
    const job = new Promise<Buffer>((resolve, reject) =>
      deflateRaw(block, options, (error, deflated) => (error ? reject(error) : resolve(deflated))),
    )
    job.catch(() => undefined) // a job failing before its turn is reported when its turn comes
    return job
  }
  /** Pushes the oldest job's output; the order of the blocks is the order of the data. */
  const pushOldest = async (gzip: Transform) => gzip.push(await jobs.shift())
  return new Transform({
    highWaterMark: GZIP_BLOCK,
    construct(done) {
      this.push(GZIP_HEADER)
      done()
    },
    transform(chunk: Buffer, _encoding, done) {
      held.push(chunk)
      heldBytes += chunk.length
      if (heldBytes < GZIP_BLOCK) return done()
      const data = Buffer.concat(held, heldBytes)
      const whole = data.length - (data.length % GZIP_BLOCK)
      held = whole < data.length ? [data.subarray(whole)] : []
      heldBytes = data.length - whole
      const dispatching = async () => {
        for (let start = 0; start < whole; start += GZIP_BLOCK) {
          jobs.push(deflate(data.subarray(start, start + GZIP_BLOCK), false))
          while (jobs.length >= concurrency) await pushOldest(this)
        }
      }
      dispatching().then(() => done(), done)
    },
    flush(done) {
      const finishing = async () => {
        jobs.push(deflate(Buffer.concat(held, heldBytes), true))
        while (jobs.length > 0) await pushOldest(this)
        const trailer = Buffer.alloc(8)
        trailer.writeUInt32LE(crc >>> 0, 0)
        trailer.writeUInt32LE(size % 2 ** 32, 4)
        this.push(trailer)
      }
      finishing().then(() => done(), done)
    },
  })
}

/** How C's strerror names the errors of a file system that refuses a write, as a program reports them. */
const WRITE_ERRORS = [
  ['ENOSPC', 'No space left on device'],
  ['EDQUOT', 'Disk quota exceeded'],
  ['EROFS', 'Read-only file system'],
  ['EIO', 'Input/output error'],
] as const

/**
 * A program reading stdin and writing stdout (or the open file `into`), as a Duplex that fails when
 * the program does. Writing into `into`, a program that fails for its file system's sake fails with
 * that error's code, as a write of Node's would.
 */
function filterProcess(command: string, args: string[], signal: AbortSignal, into?: number): Duplex {
  // LC_ALL=C: the program's messages in the words WRITE_ERRORS looks for.
  const env = { ...process.env, LC_ALL: 'C' }
  const child = killOnAbort(spawn(command, args, { stdio: ['pipe', into ?? 'pipe', 'pipe'], env, signal }), signal)
  const output = new PassThrough()
  let stderr = ''
  // stdin and stderr are piped, so there (TypeScript cannot tell for a stdio that depends on `into`).
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text))
  child.stdout?.pipe(output, { end: false })
  // A program that fails stops reading, and writing to it then fails with EPIPE: its exit status and
  // stderr, which follow, say why.
  const stdin = child.stdin!
  stdin.on('error', () => undefined)
  const input = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (stdin.write(chunk)) done()
      else stdin.once('drain', () => done())
    },
    final(done) {
      stdin.end()
      done()
    },
  })
  const duplex = Duplex.from({ writable: input, readable: output })
  // When the pipeline fails downstream (a full disk), the program must not stay blocked on a pipe.
  duplex.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill()
  })
  const fail = (error: Error) => duplex.destroy(error)
  child.on('error', (error) => fail(new Error(`cannot run ${command}: ${error.message}`)))
  child.on('close', (code) => {
    if (code === 0) return output.end()
    const error: NodeJS.ErrnoException = new Error(`${command} exited with ${code}: ${stderr.trim()}`)
    const writeError = into === undefined ? undefined : WRITE_ERRORS.find(([, text]) => stderr.includes(text))
    if (writeError) error.code = writeError[0]
    fail(error)
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
