// Cleanups that must run however a build ends: on success, on failure and on Ctrl-C.
import type { ChildProcess } from 'node:child_process'
import { UserError } from './errors.js'

// Insertion order is start order: an interrupt undoes the newest work first.
const pending = new Set<() => Promise<void>>()
const children = new Set<ChildProcess>()
let interrupted = false

/** Runs `cleanup` at most once, however many paths ask for it. */
function once(cleanup: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined
  return () => (running ??= cleanup())
}

/**
 * Runs `body`, then `cleanup`; on SIGINT/SIGTERM the cleanup runs before the process exits.
 * A failing cleanup never hides the error that ended `body`. Once interrupted, `body` no longer
 * starts: work that would begin as other work fails (the next image of a spec) only cleans up.
 */
export async function withCleanup<T>(cleanup: () => Promise<void>, body: () => Promise<T>): Promise<T> {
  const cleanupOnce = once(cleanup)
  // Listed until the cleanup has finished: an interrupt meanwhile waits for it rather than exiting.
  pending.add(cleanupOnce)
  try {
    let result: T
    try {
      if (interrupted) throw new UserError('interrupted')
      result = await body()
    } catch (error) {
      await cleanupOnce().catch(() => undefined)
      throw error
    }
    await cleanupOnce()
    return result
  } finally {
    pending.delete(cleanupOnce)
  }
}

/**
 * A child process to stop on an interrupt before the cleanups run, so it cannot write after them;
 * one started after the interrupt is stopped at once.
 */
export function trackChild<C extends ChildProcess>(child: C): C {
  if (interrupted) child.kill('SIGTERM')
  children.add(child)
  child.once('close', () => children.delete(child))
  return child
}

async function stopChildren(): Promise<void> {
  await Promise.all(
    [...children].map(
      (child) =>
        new Promise<void>((resolve) => {
          child.once('close', () => resolve())
          child.kill('SIGTERM')
          setTimeout(() => {
            child.kill('SIGKILL')
            resolve()
          }, 5_000).unref()
        }),
    ),
  )
}

/** On an interrupt, stop child processes, undo work in progress (innermost first), exit as the signal asks. */
export function cleanUpOnSignals(): void {
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      interrupted = true
      void (async () => {
        await stopChildren()
        // Until none is left: one listed meanwhile (a build that began as another failed) runs too.
        for (let newest = [...pending].at(-1); newest; newest = [...pending].at(-1)) {
          pending.delete(newest)
          await newest().catch(() => undefined)
        }
        process.exit(code)
      })()
    })
  }
}
