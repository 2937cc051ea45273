// Cleanups that must run however a build ends: on success, on failure and on Ctrl-C.
import type { ChildProcess } from 'node:child_process'

const pending: Array<() => Promise<void>> = []
const children = new Set<ChildProcess>()

/** Runs `cleanup` at most once, however many paths ask for it. */
function once(cleanup: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined
  return () => (running ??= cleanup())
}

/**
 * Runs `body`, then `cleanup`; on SIGINT/SIGTERM the cleanup runs before the process exits.
 * A failing cleanup never hides the error that ended `body`.
 */
export async function withCleanup<T>(cleanup: () => Promise<void>, body: () => Promise<T>): Promise<T> {
  const cleanupOnce = once(cleanup)
  // Listed until the cleanup has finished: an interrupt meanwhile waits for it rather than exiting.
  pending.push(cleanupOnce)
  try {
    let result: T
    try {
      result = await body()
    } catch (error) {
      await cleanupOnce().catch(() => undefined)
      throw error
    }
    await cleanupOnce()
    return result
  } finally {
    pending.splice(pending.indexOf(cleanupOnce), 1)
  }
}

/** A child process to stop on an interrupt before the cleanups run, so it cannot write after them. */
export function trackChild<C extends ChildProcess>(child: C): C {
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
      void (async () => {
        await stopChildren()
        for (const cleanup of [...pending].reverse()) await cleanup().catch(() => undefined)
        process.exit(code)
      })()
    })
  }
}
