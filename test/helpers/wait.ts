// Bounded waits on real events, for tests of processes that run beside them.

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls every 50 ms until `found` gives a value (or a promise of one), or fails with `what` after `timeoutMs`. */
export async function pollFor<T>(
  what: string,
  timeoutMs: number,
  found: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await found()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`)
    await sleep(50)
  }
}
