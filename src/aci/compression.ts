// The compressions appc allows for an ACI, as streams the tar is piped through.
import { spawn } from 'node:child_process'
import { Duplex, PassThrough } from 'node:stream'
import { createGzip } from 'node:zlib'
import { killOnAbort } from '../util/cancel.js'

export const COMPRESSIONS = ['gzip', 'xz', 'bzip2', 'none'] as const
export type Compression = (typeof COMPRESSIONS)[number]
export const DEFAULT_COMPRESSION: Compression = 'gzip'

/** gzip level 6: the level `gzip` and acbuild use by default. */
export const GZIP_LEVEL = 6

/**
 * A stream that compresses what is written to it. `pigz` (the path of the binary, when the
 * caller wants parallel gzip and has found it) gives the same format on every core; `-n` keeps
 * names and times out of the header so output stays reproducible. `signal` stops the program.
 */
export function compressor(compression: Compression, options: { pigz?: string; signal: AbortSignal }): Duplex {
  const { pigz, signal } = options
  switch (compression) {
    case 'gzip':
      return pigz ? filterProcess(pigz, [`-${GZIP_LEVEL}`, '-n', '-c'], signal) : createGzip({ level: GZIP_LEVEL })
    case 'xz':
      return filterProcess('xz', ['-6', '-c', '-T1'], signal)
    case 'bzip2':
      return filterProcess('bzip2', ['-9', '-c'], signal)
    case 'none':
      return new PassThrough()
  }
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
