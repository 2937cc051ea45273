// Cancellation: one AbortSignal per run of the CLI, aborted by SIGINT, SIGTERM or SIGHUP. Work takes
// the signal explicitly (child processes, stream pipelines, the spec's worker pool) and undoes itself
// in `finally`, so the CLI exits only once the interrupted command has finished its cleanups.
import type { ChildProcess } from 'node:child_process'
import { constants } from 'node:os'
import { UserError } from './errors.js'

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/** A child that still runs this long after SIGTERM gets SIGKILL. */
const KILL_AFTER_MS = 5_000

/** Why a run was aborted; it exits as the shell reports a process the signal killed (128 + number). */
export class Interrupted extends UserError {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`, 128 + constants.signals[signal])
    this.name = 'Interrupted'
  }
}

/**
 * The run's signal, aborted by the first stop signal. The handlers stay installed until `release`:
 * a second Ctrl-C or a SIGTERM from a supervisor is ignored, so a cleanup in progress is never cut
 * off half-way. A terminal that has hung up fails every write (EIO), maybe before its SIGHUP
 * arrives: that counts as the SIGHUP, rather than crashing the cleanup with an unhandled error.
 */
export function abortOnStopSignals(): { signal: AbortSignal; release(): void } {
  const controller = new AbortController()
  const handlers = STOP_SIGNALS.map((name) => {
    const abort = () => controller.abort(new Interrupted(name))
    process.on(name, abort)
    return () => process.off(name, abort)
  })
  const onOutputError = (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EIO') throw error
    controller.abort(new Interrupted('SIGHUP'))
  }
  const outputs = [process.stdout, process.stderr]
  outputs.forEach((output) => output.on('error', onOutputError))
  return {
    signal: controller.signal,
    release: () => {
      handlers.forEach((remove) => remove())
      outputs.forEach((output) => output.off('error', onOutputError))
    },
  }
}

/**
 * Escalates the stop of a child spawned with `signal` (Node's own option, which sends SIGTERM on
 * abort): one that ignores SIGTERM gets SIGKILL after a bound.
 */
export function killOnAbort<C extends ChildProcess>(child: C, signal: AbortSignal | undefined): C {
  if (!signal) return child
  const escalate = () => {
    const timer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS)
    child.once('close', () => clearTimeout(timer))
  }
  if (signal.aborted) escalate()
  else {
    signal.addEventListener('abort', escalate, { once: true })
    child.once('close', () => signal.removeEventListener('abort', escalate))
  }
  return child
}

/**
 * Runs `body`, then `cleanup`, however `body` ends (a `finally` whose failure never hides the error
 * that ended `body`). An aborted run finishes its cleanups before the CLI exits, as it awaits them.
 */
export async function withCleanup<T>(cleanup: () => Promise<void>, body: () => Promise<T>): Promise<T> {
  let result: T
  try {
    result = await body()
  } catch (error) {
    await cleanup().catch(() => undefined)
    throw error
  }
  await cleanup()
  return result
}
