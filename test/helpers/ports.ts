// Loopback ports for servers a test starts: asked of the kernel, not guessed, so a port that
// something else holds (outgoing connections take theirs from the ephemeral range) is never picked.
import { createServer, type Server } from 'node:net'

/** `count` distinct loopback ports that were free a moment ago. */
export async function freeLoopbackPorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Server>((resolve, reject) => {
          const server = createServer()
          server.once('error', reject)
          server.listen(0, '127.0.0.1', () => resolve(server))
        }),
    ),
  )
  const ports = servers.map((server) => {
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('no port from the kernel')
    return address.port
  })
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  return ports
}
