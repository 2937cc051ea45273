// Locks between processes that die with their holder: a listening socket in Linux's abstract
// namespace. The kernel frees the name when the holder exits, however it exits (SIGKILL too), so
// there is no lock file to go stale and no pid that could be reused.
import { connect, createServer, type Server, type Socket } from 'node:net'
import { createHash } from 'node:crypto'

export interface Lock {
  release(): void
}

/** The abstract socket name for a lock key (any text; hashed to fit the 107-byte limit). */
function socketName(key: string): string {
  return `\0nix2aci-lock-${createHash('sha256').update(key).digest('hex')}`
}

/** Takes the lock if it is free. Synchronous: listen() binds at once and says whether it could. */
export function tryLock(key: string): Lock | undefined {
  const server: Server = createServer()
  server.on('error', () => undefined) // EADDRINUSE, reported on the next tick; `listening` already says it
  server.listen(socketName(key))
  if (!server.listening) return undefined
  server.unref()
  // Waiters connect and wait for the connection to close: on release, or when this process dies.
  const waiters = new Set<Socket>()
  server.on('connection', (socket) => {
    socket.unref()
    socket.on('error', () => undefined)
    waiters.add(socket)
    socket.on('close', () => waiters.delete(socket))
  })
  return {
    release() {
      server.close()
      for (const socket of waiters) socket.destroy()
    },
  }
}

/**
 * Takes the lock, waiting for its holder when it is taken: `onWait` is given the wait, once, to
 * show it. The wait ends, rejecting, when `signal` aborts.
 */
export async function lock(
  key: string,
  onWait: (waiting: Promise<Lock>) => Promise<Lock>,
  signal: AbortSignal,
): Promise<Lock> {
  signal.throwIfAborted()
  const first = tryLock(key)
  if (first) return first
  return onWait(
    (async () => {
      for (;;) {
        await holderGone(key, signal)
        const taken = tryLock(key)
        if (taken) return taken
      }
    })(),
  )
}

/** Resolves when the holder releases the lock or exits (or is already gone); rejects on abort. */
function holderGone(key: string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal.throwIfAborted()
    const socket = connect(socketName(key))
    const abort = () => {
      socket.destroy()
      reject(signal.reason)
    }
    signal.addEventListener('abort', abort, { once: true })
    socket.resume()
    // Refused: released meanwhile, or too many waiters queued; then retry a little later, not at once.
    let failed = false
    socket.on('error', () => (failed = true))
    socket.on('close', () => {
      signal.removeEventListener('abort', abort)
      if (failed) setTimeout(resolve, 50)
      else resolve()
    })
  })
}
