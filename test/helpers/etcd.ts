// Starting the etcd fixture from an image and asking it for its version over loopback.
import { startAci } from '../harness/run-aci.js'

/** Starts etcd from `image` on a free-ish loopback port, waits (bounded) for GET /version, stops it. */
export async function etcdVersionFromImage(image: string, mounts: string | undefined): Promise<unknown> {
  const port = 20000 + Math.floor(Math.random() * 10000)
  const url = `http://127.0.0.1:${port}`
  const server = await startAci(image, {
    ...(mounts ? { mounts } : {}),
    args: [
      '--data-dir=/tmp/etcd',
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=http://127.0.0.1:${port + 10000}`,
    ],
  })
  try {
    return await pollJson(`${url}/version`, 20_000)
  } finally {
    await server.stop()
  }
}

async function pollJson(url: string, timeoutMs: number): Promise<unknown> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const response = await fetch(url)
      if (response.ok) return await response.json()
    } catch (error) {
      if (Date.now() > deadline) throw error
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}
