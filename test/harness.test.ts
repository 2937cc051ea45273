// The run harness on hand-made images: it must run what rkt would run, and refuse what rkt would refuse.
import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:http'
import { basename, join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, describe, expect, it } from 'vitest'
import {
  parseMountsFile,
  readAci,
  runAci,
  runningInGroup,
  startAci,
  unpackAci,
  waitForHttp,
} from './harness/run-aci.js'
import { makeTempDir } from './helpers/cli.js'
import { removeRktDir } from './helpers/rkt.js'
import { nixBuild } from './helpers/closure.js'
import { freeLoopbackPorts } from './helpers/ports.js'

const dir = makeTempDir()
afterAll(() => dir.remove())

const COMPRESS = { gzip: ['-z'], bzip2: ['-j'], xz: ['-J'], none: [] } as const

/** Writes an ACI (tar of manifest + rootfs) from an app and a function that fills rootfs. */
function handMadeAci(
  name: string,
  app: Record<string, unknown>,
  fill: (rootfs: string) => void = () => {},
  options: { compression?: keyof typeof COMPRESS; tarArgs?: string[] } = {},
): string {
  return handMadeImage(
    name,
    { app: { user: '0', group: '0', ...app } },
    (rootfs) => {
      mkdirSync(join(rootfs, 'bin'))
      fill(rootfs)
    },
    options,
  )
}

/** Writes an image (in `options.dir`, default the test directory) with these manifest fields and files. */
function handMadeImage(
  name: string,
  fields: Record<string, unknown>,
  fill: (rootfs: string) => void = () => {},
  options: { compression?: keyof typeof COMPRESS; tarArgs?: string[]; dir?: string } = {},
): string {
  const work = join(dir.path, 'work', name)
  const rootfs = join(work, 'rootfs')
  mkdirSync(rootfs, { recursive: true })
  fill(rootfs)
  const manifest = {
    acKind: 'ImageManifest',
    acVersion: '0.8.5',
    name: `example.com/${name}`,
    labels: [
      { name: 'arch', value: 'amd64' },
      { name: 'os', value: 'linux' },
    ],
    ...fields,
  }
  writeFileSync(join(work, 'manifest'), JSON.stringify(manifest))
  const image = join(options.dir ?? dir.path, `${name}.aci`)
  const flags = COMPRESS[options.compression ?? 'gzip']
  execFileSync('tar', ['-c', ...flags, ...(options.tarArgs ?? []), '-f', image, '-C', work, 'manifest', 'rootfs'])
  return image
}

/** What rkt names a (gzip) image: the sha512 of its tar. */
const imageIdOf = (image: string) =>
  `sha512-${createHash('sha512')
    .update(gunzipSync(readFileSync(image)))
    .digest('hex')}`

const withBusybox = (rootfs: string) => {
  copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'))
  symlinkSync('busybox', join(rootfs, 'bin/sh'))
}

/** A host directory holding a copy of busybox, to mount into thin images. */
function toolsDir(name: string): string {
  const tools = join(dir.path, name)
  mkdirSync(tools)
  copyFileSync('/bin/busybox', join(tools, 'busybox'))
  return tools
}

describe('runAci', () => {
  const fat = handMadeAci(
    'fatish',
    {
      exec: ['/bin/sh', '-c', 'echo $FOO; cat /data/x; pwd'],
      environment: [{ name: 'FOO', value: 'bar' }],
      workingDirectory: '/tmp',
    },
    (rootfs) => {
      withBusybox(rootfs)
      mkdirSync(join(rootfs, 'data'))
      writeFileSync(join(rootfs, 'data/x'), 'from the image\n')
      chmodSync(join(rootfs, 'data/x'), 0o640)
    },
    // Names the host knows with other ids: rkt goes by the numbers.
    { tarArgs: ['--owner=daemon:1234', '--group=daemon:5678'] },
  )

  it('runs app.exec with app.environment in app.workingDirectory, from the image alone', async () => {
    expect(await runAci(fat)).toEqual({
      status: 0,
      signal: null,
      stdout: 'bar\nfrom the image\n/tmp\n',
      stderr: '',
      timedOut: false,
    })
  })

  it("gives rkt's PATH and AC_APP_NAME, lets env override the image's, and keeps modes and numeric owners", async () => {
    const run = await runAci(fat, {
      exec: [
        '/bin/sh',
        '-c',
        'echo "$PATH|$AC_APP_NAME|$FOO|$EXTRA"; /bin/busybox stat -c "%u:%g %a" /data/x; ls -l /bin/sh',
      ],
      env: { FOO: 'overridden', EXTRA: 'x' },
    })
    expect(run.stderr).toBe('')
    const lines = run.stdout.split('\n')
    expect(lines[0]).toBe('/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|fatish|overridden|x')
    expect(lines[1]).toBe('1234:5678 640')
    expect(lines[2]).toMatch(/^lrwxrwxrwx .* \/bin\/sh -> busybox$/)
  })

  it('passes the exit code through, appends args and replaces exec', async () => {
    const image = handMadeAci('exit', { exec: ['/bin/sh', '-c'] }, withBusybox)
    expect(await runAci(image, { args: ['exit 3'] })).toMatchObject({ status: 3, signal: null })
    expect(await runAci(image, { exec: ['/bin/busybox', 'echo'], args: ['a', 'b'] })).toMatchObject({
      status: 0,
      stdout: 'a b\n',
    })
    // bwrap reports an app killed by a signal as 128 + the signal, like a shell.
    expect((await runAci(image, { args: ['kill -9 $$'] })).status).toBe(137)
  })

  it('kills an app that outlives timeoutMs', async () => {
    const image = handMadeAci('sleeper', { exec: ['/bin/sh', '-c', 'echo started; sleep 30'] }, withBusybox)
    const started = Date.now()
    const run = await runAci(image, { timeoutMs: 1_000 })
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(run).toMatchObject({ timedOut: true, status: null, signal: 'SIGKILL', stdout: 'started\n' })
  })

  it('runs a non-root user and group as their ids', async () => {
    const image = handMadeAci('user', { exec: ['/bin/busybox', 'id'], user: '1000', group: '100' }, withBusybox)
    expect((await runAci(image)).stdout).toBe('uid=1000 gid=100\n')
  })

  it('shares the host network by default and none cuts it off', async () => {
    const server = createServer((_, response) => response.end('host says hi'))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as { port: number }
    try {
      const image = handMadeAci(
        'wget',
        { exec: ['/bin/busybox', 'wget', '-q', '-O', '-', `http://127.0.0.1:${port}/`] },
        withBusybox,
      )
      expect(await runAci(image)).toMatchObject({ status: 0, stdout: 'host says hi' })
      const cut = await runAci(image, { network: 'none' })
      expect(cut.status).not.toBe(0)
      expect(cut.stdout).toBe('')
    } finally {
      server.close()
    }
  })
})

describe('volumes', () => {
  const tools = toolsDir('tools')
  const thin = handMadeAci('thinnish', {
    exec: [
      '/opt/tools/busybox',
      'sh',
      '-c',
      'ls /opt/tools; /opt/tools/busybox touch /opt/tools/new && echo wrote || echo read-only',
    ],
    mountPoints: [{ name: 'tools', path: '/opt/tools', readOnly: true }],
  })
  const mounts = join(dir.path, 'thinnish.mounts')
  writeFileSync(mounts, `--volume=tools,kind=host,source=${tools},readOnly=true\n`)

  it('binds each volume of the .mounts file at its mount point, read-only when asked', async () => {
    const run = await runAci(thin, { mounts })
    expect(run).toMatchObject({ status: 0, stdout: 'busybox\nread-only\n' })
    expect(run.stderr).toMatch(/Read-only file system/)
    expect(readdirSync(tools)).toEqual(['busybox'])
  })

  it("lets a volume's readOnly=false override the mount point's readOnly, as rkt does", async () => {
    const writable = toolsDir('tools-rw')
    const run = await runAci(thin, { mounts: [{ name: 'tools', kind: 'host', source: writable, readOnly: false }] })
    expect(run.stdout).toBe('busybox\nwrote\n')
    expect(readdirSync(writable).sort()).toEqual(['busybox', 'new'])
  })

  it("takes the mount point's readOnly when the volume gives none", async () => {
    const run = await runAci(thin, { mounts: [{ name: 'tools', kind: 'host', source: tools }] })
    expect(run.stdout).toBe('busybox\nread-only\n')
  })

  it('refuses a mount point with no volume, naming every one', async () => {
    const two = handMadeAci(
      'two-mounts',
      {
        exec: ['/bin/sh', '-c', 'true'],
        mountPoints: [
          { name: 'tools', path: '/opt/tools' },
          { name: 'store', path: '/nix/store' },
        ],
      },
      withBusybox,
    )
    await expect(runAci(thin)).rejects.toThrow(/mount point 'tools' \(\/opt\/tools\) has no volume/)
    await expect(runAci(two)).rejects.toThrow(
      /'tools' \(\/opt\/tools\) has no volume; mount point 'store' \(\/nix\/store\) has no volume/,
    )
    await expect(runAci(two, { mounts })).rejects.toThrow(/mount point 'store' \(\/nix\/store\) has no volume/)
  })

  it('with ignoreMissingVolumes, gives a missing volume an empty writable directory', async () => {
    const image = handMadeAci(
      'empty-volume',
      {
        exec: ['/bin/sh', '-c', 'ls -A /data; echo x > /data/f && cat /data/f'],
        mountPoints: [{ name: 'data', path: '/data' }],
      },
      (rootfs) => {
        withBusybox(rootfs)
        mkdirSync(join(rootfs, 'data'))
        writeFileSync(join(rootfs, 'data/hidden'), 'image content under the mount point\n')
      },
    )
    expect(await runAci(image, { ignoreMissingVolumes: true })).toMatchObject({ status: 0, stdout: 'x\n' })
  })

  it('refuses a volume that fills no mount point', async () => {
    const stray = join(dir.path, 'stray.mounts')
    writeFileSync(stray, `--volume=tools,kind=host,source=${tools} --volume=extra,kind=host,source=/tmp`)
    await expect(runAci(thin, { mounts: stray })).rejects.toThrow(/volumes fill no mount point: 'extra'/)
  })
})

describe('unpacking', () => {
  for (const compression of ['gzip', 'bzip2', 'xz', 'none'] as const) {
    it(`reads and runs a ${compression} image`, async () => {
      const image = handMadeAci(`packed-${compression}`, { exec: ['/bin/sh', '-c', 'echo ok'] }, withBusybox, {
        compression,
      })
      const { manifest, compression: detected } = await readAci(image)
      expect(detected).toBe(compression)
      expect(manifest.name).toBe(`example.com/packed-${compression}`)
      expect(await runAci(image)).toMatchObject({ status: 0, stdout: 'ok\n' })
    })
  }

  it('refuses a file that is no ACI, and an archive without a manifest', async () => {
    const junk = join(dir.path, 'junk.aci')
    writeFileSync(junk, 'zstd or worse'.repeat(100))
    await expect(runAci(junk)).rejects.toThrow(/not an ACI/)
    const empty = join(dir.path, 'no-manifest.aci')
    mkdirSync(join(dir.path, 'no-manifest/rootfs'), { recursive: true })
    execFileSync('tar', ['-czf', empty, '-C', join(dir.path, 'no-manifest'), 'rootfs'])
    await expect(readAci(empty)).rejects.toThrow(/no manifest/)
    await expect(runAci(empty)).rejects.toThrow(/manifest/)
  })

  it('removes the unpacked image after a run, a failed start and a refused one', async () => {
    const parent = join(dir.path, 'unpack-here')
    mkdirSync(parent)
    const image = handMadeAci(
      'cleanup',
      { exec: ['/bin/sh', '-c', 'exit 1'], mountPoints: [{ name: 'm', path: '/m' }] },
      withBusybox,
    )
    expect((await runAci(image, { tmpDir: parent, ignoreMissingVolumes: true })).status).toBe(1)
    expect(readdirSync(parent)).toEqual([])
    await expect(runAci(image, { tmpDir: parent })).rejects.toThrow(/has no volume/)
    expect(readdirSync(parent)).toEqual([])
    expect(
      (await runAci(image, { tmpDir: parent, ignoreMissingVolumes: true, exec: ['/no/such/program'] })).status,
    ).toBe(1)
    expect(readdirSync(parent)).toEqual([])
    const unpacked = await unpackAci(image, parent)
    expect(readdirSync(unpacked.rootfs).sort()).toEqual(['bin'])
    unpacked.remove()
    expect(readdirSync(parent)).toEqual([])
  })
})

describe('startAci', () => {
  const httpd = handMadeAci('httpd', { exec: ['/bin/busybox', 'httpd', '-f', '-v', '-h', '/www'] }, (rootfs) => {
    withBusybox(rootfs)
    mkdirSync(join(rootfs, 'www'))
    writeFileSync(join(rootfs, 'www/index.html'), 'served\n')
  })

  it('starts a server reachable on loopback, and stop() kills it and removes the image', async () => {
    const [port] = await freeLoopbackPorts(1)
    const server = await startAci(httpd, { args: ['-p', `127.0.0.1:${port}`] })
    try {
      const response = await waitForHttp(`http://127.0.0.1:${port}/`, { server, timeoutMs: 10_000 })
      expect(await response.text()).toBe('served\n')
    } finally {
      await server.stop()
    }
    expect(server.process.signalCode).toBe('SIGTERM')
    expect(runningInGroup(server.process.pid!)).toEqual([])
    expect(existsSync(server.dir)).toBe(false)
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow()
    expect(await server.stop()).toMatchObject({ status: null, signal: 'SIGTERM' })
  })

  it("waitForHttp gives up at once, with the app's stderr, when the server dies", async () => {
    const server = await startAci(httpd, { args: ['-p', 'not-a-port'] })
    try {
      const started = Date.now()
      await expect(waitForHttp('http://127.0.0.1:1/', { server, timeoutMs: 30_000 })).rejects.toThrow(
        /server exited \(status 1\)[\s\S]*httpd/,
      )
      expect(Date.now() - started).toBeLessThan(10_000)
    } finally {
      await server.stop()
    }
  })
})

describe('parseMountsFile', () => {
  it('reads every --volume, keeping readOnly only when given', () => {
    expect(parseMountsFile('--volume=a,kind=host,source=/x,readOnly=true  --volume=b-2,kind=host,source=/y\n')).toEqual(
      [
        { name: 'a', kind: 'host', source: '/x', readOnly: true },
        { name: 'b-2', kind: 'host', source: '/y' },
      ],
    )
    expect(parseMountsFile('--volume=c,readOnly=false,source=/z,kind=host')).toEqual([
      { name: 'c', kind: 'host', source: '/z', readOnly: false },
    ])
    // appc's parser lets runs of dashes through, though its spec's regular expression does not.
    expect(parseMountsFile('--volume=a--b,kind=host,source=/x')).toEqual([{ name: 'a--b', kind: 'host', source: '/x' }])
    expect(parseMountsFile(' \n')).toEqual([])
  })

  it.each([
    ['--mount=a', /not a --volume argument/],
    ['--volume a,kind=host,source=/x', /not a --volume argument/],
    ['--volume=a,kind=host', /source must be an absolute path/],
    ['--volume=a,kind=host,source=rel/x', /source must be an absolute path/],
    ['--volume=a,source=/x', /kind must be host/],
    ['--volume=a,kind=empty', /kind must be host/],
    ['--volume=a,oops', /malformed field 'oops'/],
    ['--volume=a,kind=host,source=/x,readOnly=yes', /readOnly must be true or false/],
    ['--volume=a,kind=host,source=/x,mode=0755', /unknown volume parameter 'mode'/],
    ['--volume=a,kind=host,source=/x,source=/y', /'source' given twice/],
    ['--volume=Bad_Name,kind=host,source=/x', /not a valid volume name/],
    ['--volume=a.b,kind=host,source=/x', /'a\.b' is not a valid volume name/],
    ['--volume=a/b,kind=host,source=/x', /'a\/b' is not a valid volume name/],
    ['--volume=-a,kind=host,source=/x', /'-a' is not a valid volume name/],
    ['--volume=a,kind=host,source=/x --volume=a,kind=host,source=/y', /volume 'a' given twice/],
  ])('refuses %s', (text, error) => {
    expect(() => parseMountsFile(text)).toThrow(error)
  })
})

describe('dependencies', () => {
  // A layer holds a store path, as nix2aci's layered images do; the app image only names it.
  const [busybox] = nixBuild(['busybox'])
  const layers = join(dir.path, 'layers')
  mkdirSync(layers)
  const inLayers = { dir: layers }
  const etcFile = (rootfs: string, name: string, text: string) => {
    mkdirSync(join(rootfs, 'etc'), { recursive: true })
    writeFileSync(join(rootfs, 'etc', name), `${text}\n`)
  }
  const busyboxLayer = handMadeImage(
    'busybox-layer',
    {},
    (rootfs) => {
      mkdirSync(join(rootfs, 'nix/store'), { recursive: true })
      execFileSync('cp', ['-a', busybox!, join(rootfs, 'nix/store')])
      etcFile(rootfs, 'who', 'layer')
      etcFile(rootfs, 'layer-only', 'layer only')
      mkdirSync(join(rootfs, 'data'))
      writeFileSync(join(rootfs, 'data/hidden'), 'below a file of the app\n')
    },
    inLayers,
  )
  const dependency = (image: string) => ({
    imageName: `example.com/${basename(image, '.aci')}`,
    imageID: imageIdOf(image),
  })
  // Three more layers, rendered as rkt 1.30 was seen to: d (a dependency of c) over b, c over both.
  const d = handMadeImage('d', {}, (rootfs) => ['which', 'bd', 'd'].forEach((f) => etcFile(rootfs, f, 'D')), inLayers)
  const b = handMadeImage('b', {}, (rootfs) => ['which', 'bd', 'b'].forEach((f) => etcFile(rootfs, f, 'B')), inLayers)
  const c = handMadeImage(
    'c',
    { dependencies: [dependency(d)] },
    (rootfs) => ['which', 'c'].forEach((f) => etcFile(rootfs, f, 'C')),
    inLayers,
  )
  // Not `ls /etc`: rkt adds its own /etc/hosts and /etc/mtab.
  const script = 'cat /etc/who /etc/layer-only /etc/which /etc/bd /etc/b /etc/c /etc/d /data; ls /nix/store'
  const appWith = (name: string, dependencies: unknown[]) =>
    handMadeImage(
      name,
      { app: { exec: [`${busybox}/bin/busybox`, 'sh', '-c', script], user: '0', group: '0' }, dependencies },
      (rootfs) => {
        etcFile(rootfs, 'who', 'app')
        writeFileSync(join(rootfs, 'data'), 'a file of the app\n')
      },
    )
  const app = appWith('layered-app', [dependency(busyboxLayer), dependency(b), dependency(c)])
  const expected = ['app', 'layer only', 'C', 'D', 'B', 'C', 'D', 'a file of the app', basename(busybox!)]

  it('lays the dependencies down in order, their own after them, and the app last, with no host store', async () => {
    const run = await runAci(app, { images: layers })
    expect(run.stderr).toBe('')
    expect(run).toMatchObject({ status: 0, stdout: `${expected.join('\n')}\n` })
  })

  it('refuses a missing dependency, naming it, and leaves nothing unpacked', async () => {
    const parent = join(dir.path, 'unpack-deps')
    mkdirSync(parent)
    const elsewhere = join(dir.path, 'no-layers')
    mkdirSync(elsewhere)
    await expect(runAci(app, { images: elsewhere, tmpDir: parent })).rejects.toThrow(
      `dependency example.com/busybox-layer ${imageIdOf(busyboxLayer)} is not among the images in ${elsewhere}`,
    )
    await expect(runAci(app, { tmpDir: parent })).rejects.toThrow(/not among the images in \(no images option given\)/)
    expect(readdirSync(parent)).toEqual([])
  })

  it('refuses a dependency whose imageID is not the image of that name', async () => {
    const wrongId = `sha512-${'0'.repeat(128)}`
    const wrong = appWith('wrong-id', [{ imageName: 'example.com/busybox-layer', imageID: wrongId }])
    await expect(runAci(wrong, { images: layers })).rejects.toThrow(
      `dependency example.com/busybox-layer ${wrongId} is not among the images in ${layers}; ` +
        `${busyboxLayer} is example.com/busybox-layer but its image ID is ${imageIdOf(busyboxLayer)}`,
    )
    const notAnId = appWith('not-an-id', [{ imageName: 'example.com/b', imageID: 'sha256-abc' }])
    await expect(runAci(notAnId, { images: layers })).rejects.toThrow(/imageID is not sha512-HEX/)
  })

  it('finds a dependency with no imageID by its name and labels', async () => {
    const byName = appWith('by-name', [
      { imageName: 'example.com/busybox-layer', labels: [{ name: 'os', value: 'linux' }] },
    ])
    const run = await runAci(byName, { images: layers, exec: [`${busybox}/bin/busybox`, 'cat', '/etc/layer-only'] })
    expect(run).toMatchObject({ status: 0, stdout: 'layer only\n' })
  })

  const rkt = spawnSync('sh', ['-c', 'command -v rkt'], { encoding: 'utf8' }).stdout.trim()
  it.skipIf(!rkt || process.getuid?.() !== 0)(
    'prints what the real rkt prints for the same images (rkt on PATH)',
    async () => {
      const rktDir = makeTempDir('nix2aci-rkt-')
      const inRkt = (...args: string[]) =>
        spawnSync(rkt, [`--dir=${rktDir.path}`, '--insecure-options=image', ...args], { encoding: 'utf8' })
      try {
        // rkt fetches an image's dependencies with it, from its store: the dependencies first.
        for (const layer of [busyboxLayer, b, d, c]) {
          const fetched = inRkt('fetch', '--pull-policy=new', layer)
          expect(fetched.status, fetched.stderr).toBe(0)
        }
        const run = inRkt('run', app)
        expect(run.status, run.stderr).toBe(0)
        expect(run.stdout).toBe(`${expected.join('\n')}\n`)
        expect((await runAci(app, { images: layers })).stdout).toBe(run.stdout)
      } finally {
        removeRktDir(rktDir.path, rkt)
      }
    },
  )
})
