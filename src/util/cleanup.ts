// Cleanups that must run however a build ends: on success, on failure and on Ctrl-C.

const pending: Array<() => Promise<void>> = []

/**
 * Runs `body`, then `cleanup`; on SIGINT/SIGTERM the cleanup runs before the process exits.
 * A failing cleanup never hides the error that ended `body`.
 */
export async function withCleanup<T>(cleanup: () => Promise<void>, body: () => Promise<T>): Promise<T> {
  pending.push(cleanup)
  const done = () => pending.splice(pending.indexOf(cleanup), 1)
  let result: T
  try {
    result = await body()
  } catch (error) {
    done()
    await cleanup().catch(() => undefined)
    throw error
  }
  done()
  await cleanup()
  return result
}

/** On an interrupt, undo work in progress (innermost first) and exit as the signal asks. */
export function cleanUpOnSignals(): void {
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      void (async () => {
        for (const cleanup of pending.reverse()) await cleanup().catch(() => undefined)
        process.exit(code)
      })()
    })
  }
}
