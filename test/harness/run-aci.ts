// Runs an ACI the way rkt's fly stage1 does, for tests: unpack the image, its dependencies rendered
// under it from a directory of images (unpack.ts, render.ts), bind each mount
// point's host volume from a .mounts file (mounts.ts), run app.exec with app.environment in
// app.workingDirectory under bubblewrap (bwrap.ts), and wait for its whole process group
// (process-group.ts). bubblewrap stands in for rkt, which no registry here has.
import { spawn, type ChildProcess } from 'node:child_process'
import { pollFor } from '../helpers/wait.js'
import { bwrapArgs, type LaunchOptions } from './bwrap.js'
import { groupGone, killGroup, killOnExit } from './process-group.js'
import { unpackAci, type ImageManifest } from './unpack.js'

export { FRESH_SYSTEM_DIRS } from './bwrap.js'
export { parseMountsFile } from './mounts.js'
export { runningInGroup } from './process-group.js'
export { readAci, unpackAci } from './unpack.js'

export interface RunOptions extends LaunchOptions {
  /** runAci only: kill the app after this long (default 60 s); the result says `timedOut`. */
  timeoutMs?: number
  /** Where to unpack (default the system temp directory). */
  tmpDir?: string
  /**
   * Directories whose .aci files the image's dependencies are found among, by image ID, as rkt finds
   * them in its store once `rkt fetch`ed; needed only by an image with dependencies.
   */
  images?: string | string[]
}

export interface RunResult {
  status: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  timedOut: boolean
}

export interface RunningAci {
  process: ChildProcess
  /** The unpacked image; stop() removes it. */
  dir: string
  manifest: ImageManifest
  output(): { stdout: string; stderr: string }
  /** Settles when the app and every process it started have exited, by themselves or by stop(). */
  exited: Promise<RunResult>
  /** Stops the app's whole process tree (SIGTERM, SIGKILL after `graceMs`) and removes the unpacked image. */
  stop(graceMs?: number): Promise<RunResult>
}

/** Starts the image's app and returns at once: for servers a test then talks to over loopback. */
export async function startAci(image: string, options: RunOptions = {}): Promise<RunningAci> {
  const images = typeof options.images === 'string' ? [options.images] : options.images
  const unpacked = await unpackAci(image, options.tmpDir, images)
  let child: ChildProcess
  try {
    const argv = bwrapArgs(image, unpacked, options)
    // Detached: bwrap and everything it starts form one process group, which stop() kills.
    child = spawn('bwrap', argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  } catch (error) {
    unpacked.remove()
    throw error
  }
  const exitGuard = killOnExit(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text))
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text))
  let timedOut = false
  const exited = new Promise<RunResult>((resolve) => {
    let settled = false
    const done = (status: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return
      settled = true
      exitGuard.release()
      unpacked.remove()
      resolve({ status, signal, stdout, stderr, timedOut })
    }
    child.on('error', (error) => {
      stderr += `${error.message}\n`
      done(null, null)
    })
    child.on('close', (status, signal) => {
      groupGone(child).then(
        () => done(status, signal),
        (error: Error) => {
          stderr += `${error.message}\n`
          done(status, signal)
        },
      )
    })
  })
  const timer =
    options.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true
          killGroup(child, 'SIGKILL')
        }, options.timeoutMs)
  void exited.then(() => clearTimeout(timer))
  return {
    process: child,
    dir: unpacked.dir,
    manifest: unpacked.manifest,
    output: () => ({ stdout, stderr }),
    exited,
    async stop(graceMs = 5_000) {
      if (child.exitCode === null && child.signalCode === null) {
        killGroup(child, 'SIGTERM')
        const killer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs)
        await exited
        clearTimeout(killer)
      }
      return exited
    },
  }
}

/** Runs the image's app to completion (killed after `timeoutMs`, default 60 s) and returns what it printed. */
export async function runAci(image: string, options: RunOptions = {}): Promise<RunResult> {
  const running = await startAci(image, { timeoutMs: 60_000, ...options })
  return running.exited
}

/**
 * Polls `url` until it answers 2xx or `timeoutMs` passes; gives up at once, with the app's
 * output, if `server` exits first.
 */
export async function waitForHttp(
  url: string,
  options: { timeoutMs?: number; server?: RunningAci } = {},
): Promise<Response> {
  let exited: RunResult | undefined
  void options.server?.exited.then((result) => (exited = result))
  let last = 'no answer'
  const answer = async () => {
    if (exited)
      throw new ServerExited(`server exited (status ${exited.status}) before ${url} answered:\n${exited.stderr}`)
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) })
      if (response.ok) return response
      last = `HTTP ${response.status}`
    } catch (error) {
      last = (error as Error).message
    }
    return undefined
  }
  return pollFor(`${url} did not answer`, options.timeoutMs ?? 20_000, answer).catch((error: Error) => {
    throw error instanceof ServerExited ? error : new Error(`${error.message}: ${last}`)
  })
}

class ServerExited extends Error {}
