// Starting the etcd fixture from an image and asking it for its version over loopback.
import { startAci, waitForHttp } from '../harness/run-aci.js'
import { freeLoopbackPorts } from './ports.js'

/** Starts etcd from `image` on free loopback ports, waits (bounded) for GET /version, stops it. */
export async function etcdVersionFromImage(image: string, mounts: string | undefined): Promise<unknown> {
  const [port, peerPort] = await freeLoopbackPorts(2)
  const url = `http://127.0.0.1:${port}`
  const server = await startAci(image, {
    ...(mounts ? { mounts } : {}),
    args: [
      '--data-dir=/tmp/etcd',
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
    ],
  })
  try {
    const response = await waitForHttp(`${url}/version`, { server, timeoutMs: 20_000 }).catch((error: Error) => {
      // waitForHttp gives the stderr of a server that exited; one still running may say why it is silent.
      const running = server.process.exitCode === null && server.process.signalCode === null
      throw running ? new Error(`${error.message}\netcd's stderr so far:\n${server.output().stderr}`) : error
    })
    return await response.json()
  } finally {
    await server.stop()
  }
}
