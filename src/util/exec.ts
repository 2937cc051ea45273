import { execFile } from 'node:child_process'
import { accessSync, constants, createReadStream } from 'node:fs'
import { delimiter, join } from 'node:path'
import { killOnAbort } from './cancel.js'
import { UserError, messageOf } from './errors.js'

/** A command that exited non-zero (or could not start), with what it printed. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`${command} failed${exitCode === null ? '' : ` (exit ${exitCode})`}: ${errorLine(stderr) ?? 'no output'}`)
    this.name = 'CommandError'
  }
}

/**
 * The one line a program's error output comes down to: its first `error:` line (as Nix prints
 * them), else its last line; trimmed, without `prefix`, the tag the program puts on its lines (`gpg: `).
 */
export function errorLine(output: string, prefix = ''): string | undefined {
  const lines = output
    .split('\n')
    .map((line) => (line.startsWith(prefix) ? line.slice(prefix.length) : line).trim())
    .filter(Boolean)
  return lines.find((line) => line.startsWith('error:')) ?? lines.at(-1)
}

/**
 * Runs a program (no shell) and collects its output; `onStderrLine` also sees each line of its
 * stderr as it comes; `stdinFile` is its standard input (else an empty pipe left open). Plain
 * execFile rather than zx here: the Nix layer is on every build's hot path and start-up time counts.
 * Once `signal` aborts, the program is stopped and the promise rejects with the signal's reason,
 * after the program has exited.
 */
export function run(
  command: string,
  args: readonly string[],
  options: {
    env?: NodeJS.ProcessEnv
    signal?: AbortSignal
    onStderrLine?: (line: string) => void
    stdinFile?: string
  } = {},
): Promise<{ stdout: string; stderr: string }> {
  const { signal } = options
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { env: options.env ?? process.env, maxBuffer: 512 * 1024 * 1024, encoding: 'utf8', signal },
      (error, stdout, stderr) => {
        if (error?.name === 'AbortError' && child.pid !== undefined) {
          // execFile calls back on the abort itself, while the program is still running.
          child.once('close', () => reject(signal?.reason))
        } else if (signal?.aborted) {
          reject(signal.reason)
        } else if (error) {
          const code = typeof error.code === 'number' ? error.code : null
          reject(new CommandError(command, code, stderr || error.message))
        } else {
          resolve({ stdout, stderr })
        }
      },
    )
    killOnAbort(child, signal)
    if (options.stdinFile !== undefined) {
      // A program that stops reading early says why by its exit status, not by this pipe's EPIPE.
      child.stdin!.on('error', () => undefined)
      createReadStream(options.stdinFile)
        .on('error', (error) => {
          child.kill()
          reject(new UserError(`cannot read ${options.stdinFile}: ${messageOf(error)}`))
        })
        .pipe(child.stdin!)
    }
    if (options.onStderrLine && child.stderr) forEachLine(child.stderr, options.onStderrLine)
  })
}

function forEachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let partial = ''
  stream.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n')
    partial = lines.pop()!
    for (const line of lines) onLine(line)
  })
  stream.on('end', () => {
    if (partial) onLine(partial)
  })
}

/**
 * The full path of an executable on PATH, or undefined. Synchronous (a few access calls) so a build
 * can check its tools and start nix-env before it first yields.
 */
export function findOnPath(command: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue
    const candidate = join(dir, command)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not in this directory
    }
  }
  return undefined
}
