// The run harness on hand-made images: it must run what rkt would run, and refuse what rkt would refuse.
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { parseMountsFile, runAci, startAci } from './harness/run-aci.js'
import { makeTempDir } from './helpers/cli.js'

const dir = makeTempDir()
afterAll(() => dir.remove())

/** Writes an ACI (gzip tar of manifest + rootfs) from a manifest and a function that fills rootfs. */
function handMadeAci(name: string, app: Record<string, unknown>, fill: (rootfs: string) => void = () => {}): string {
  const work = join(dir.path, name)
  const rootfs = join(work, 'rootfs')
  mkdirSync(join(rootfs, 'bin'), { recursive: true })
  fill(rootfs)
  writeFileSync(join(work, 'manifest'), JSON.stringify({ acKind: 'ImageManifest', acVersion: '0.8.5', name, app }))
  const image = join(dir.path, `${name}.aci`)
  execFileSync('tar', ['-czf', image, '-C', work, 'manifest', 'rootfs'])
  return image
}

const withBusybox = (rootfs: string) => {
  copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'))
  symlinkSync('busybox', join(rootfs, 'bin/sh'))
}

describe('run harness', () => {
  it('runs app.exec with its environment and working directory', async () => {
    const image = handMadeAci(
      'fatish',
      {
        exec: ['/bin/sh', '-c', 'echo "$FOO"; pwd; cat /data/x'],
        environment: [{ name: 'FOO', value: 'bar' }],
        workingDirectory: '/tmp',
        user: '0',
        group: '0',
      },
      (rootfs) => {
        withBusybox(rootfs)
        mkdirSync(join(rootfs, 'data'))
        writeFileSync(join(rootfs, 'data/x'), 'from the image\n')
      },
    )
    const run = await runAci(image)
    expect(run).toMatchObject({ status: 0, stdout: 'bar\n/tmp\nfrom the image\n' })
  })

  it('binds volumes from a .mounts file, read-only when asked, and refuses a missing one', async () => {
    const tools = join(dir.path, 'tools')
    mkdirSync(tools)
    copyFileSync('/bin/busybox', join(tools, 'busybox'))
    const image = handMadeAci('thinnish', {
      exec: ['/opt/tools/busybox', 'sh', '-c', 'ls /opt/tools; touch /opt/tools/new || echo read-only'],
      mountPoints: [{ name: 'tools', path: '/opt/tools', readOnly: true }],
      user: '0',
      group: '0',
    })
    const mounts = join(dir.path, 'thinnish.mounts')
    writeFileSync(mounts, `--volume=tools,kind=host,source=${tools},readOnly=true\n`)
    const run = await runAci(image, { mounts })
    expect(run.stdout).toBe('busybox\nread-only\n')
    await expect(runAci(image)).rejects.toThrow(/mount point 'tools' \(\/opt\/tools\) has no volume/)
  })

  it('passes the exit code through and appends args', async () => {
    const image = handMadeAci('exit', { exec: ['/bin/sh', '-c'], user: '0', group: '0' }, withBusybox)
    expect((await runAci(image, { args: ['exit 3'] })).status).toBe(3)
  })

  it('starts a server reachable on loopback, and stops it', async () => {
    const image = handMadeAci('httpd', { exec: ['/bin/busybox', 'httpd', '-f', '-h', '/www'], user: '0', group: '0' }, (rootfs) => {
      withBusybox(rootfs)
      mkdirSync(join(rootfs, 'www'))
      writeFileSync(join(rootfs, 'www/index.html'), 'served\n')
    })
    const port = 30000 + Math.floor(Math.random() * 5000)
    const server = await startAci(image, { args: ['-p', `127.0.0.1:${port}`] })
    try {
      let body = ''
      for (let i = 0; i < 50 && !body; i++) {
        body = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text(), () => '')
        if (!body) await new Promise((resolve) => setTimeout(resolve, 100))
      }
      expect(body).toBe('served\n')
    } finally {
      await server.stop()
    }
    expect(server.process.exitCode !== null || server.process.signalCode !== null).toBe(true)
  })

  it('parses .mounts files and rejects malformed ones', () => {
    expect(parseMountsFile('--volume=a,kind=host,source=/x,readOnly=true  --volume=b,kind=host,source=/y\n')).toEqual([
      { name: 'a', kind: 'host', source: '/x', readOnly: true },
      { name: 'b', kind: 'host', source: '/y', readOnly: false },
    ])
    expect(() => parseMountsFile('--mount=a')).toThrow(/not a --volume/)
    expect(() => parseMountsFile('--volume=a,kind=host')).toThrow(/needs kind= and source=/)
    expect(() => parseMountsFile('--volume=a,oops')).toThrow(/malformed field/)
  })
})
