// Every manifest option through the CLI: actool accepts the image, the manifest says what was asked,
// and, where acbuild is installed, both engines write the same manifest.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { MAX_IMAGE_NAME } from '../src/plan/plan.js'
import { runAci } from './harness/run-aci.js'
import { actoolValidate, buildJson, fixtureEnv, listImage, makeTempDir, onPath, runCli } from './helpers/cli.js'

const out = makeTempDir()
afterAll(() => out.remove())

const options = [
  '--exec',
  'sh -c \'echo "$GREETING from $(pwd)"; id -u; id -G\'',
  '--image-version',
  '1.2.3',
  '--label',
  'channel=stable',
  '--env',
  'GREETING=hello',
  '--port',
  'http:tcp:8080',
  '--port',
  'dns:udp:53:2:socket-activated',
  '--mount',
  'data:/data',
  '--mount',
  'config:/etc/app:ro',
  '--volume',
  `data=${out.path}`,
  '--isolator',
  'resource/memory={"limit":"1G"}',
  '--user',
  '1000',
  '--group',
  '100',
  '--supplementary-gid',
  '10',
  '--supplementary-gid',
  '20',
  '--working-dir',
  '/tmp',
  '--annotation',
  'authors=nix2aci tests',
  '--pre-start',
  'echo pre-start',
  '--post-stop',
  '/bin/echo post-stop',
]

function build(engine: 'native' | 'acbuild', kind: 'thin' | 'fat') {
  const dir = join(out.path, `${engine}-${kind}`)
  const result = buildJson([kind, 'opts', 'sh', 'busybox', '--out-dir', dir, '--engine', engine, ...options])
  expect(actoolValidate(result.image).status).toBe(0)
  return { result, manifest: listImage(result.image).manifest as Record<string, any> }
}

describe('manifest options', () => {
  it('end up in the manifest as asked, with programs resolved in the profile', () => {
    const { manifest, result } = build('native', 'thin')
    expect(manifest.labels).toEqual([
      { name: 'arch', value: 'amd64' },
      { name: 'os', value: 'linux' },
      { name: 'version', value: '1.2.3' },
      { name: 'channel', value: 'stable' },
    ])
    const { app } = manifest
    expect(app.exec[0]).toMatch(/^\/nix\/store\/[a-z0-9]{32}-user-environment\/bin\/sh$/)
    expect(app.exec.slice(1)).toEqual(['-c', 'echo "$GREETING from $(pwd)"; id -u; id -G'])
    expect(app.eventHandlers).toEqual([
      { name: 'pre-start', exec: [expect.stringMatching(/\/bin\/echo$/), 'pre-start'] },
      { name: 'post-stop', exec: ['/bin/echo', 'post-stop'] },
    ])
    expect(app).toMatchObject({ user: '1000', group: '100', supplementaryGIDs: [10, 20], workingDirectory: '/tmp' })
    expect(app.environment).toEqual([{ name: 'GREETING', value: 'hello' }])
    expect(app.ports).toEqual([
      { name: 'http', protocol: 'tcp', port: 8080, count: 1, socketActivated: false },
      { name: 'dns', protocol: 'udp', port: 53, count: 2, socketActivated: true },
    ])
    expect(app.mountPoints.slice(-2)).toEqual([
      { name: 'data', path: '/data' },
      { name: 'config', path: '/etc/app', readOnly: true },
    ])
    expect(app.isolators).toEqual([{ name: 'resource/memory', value: { limit: '1G' } }])
    expect(manifest.annotations).toEqual([{ name: 'authors', value: 'nix2aci tests' }])
    // The user's volume lands in .mounts; the mount with no volume is left for rkt's user to fill.
    const mounts = readFileSync(result.mountsFile!, 'utf8')
    expect(mounts).toContain(`--volume=data,kind=host,source=${out.path}`)
    expect(mounts).not.toContain('--volume=config')
  })

  it('appends the arguments after -- to the exec', () => {
    const result = buildJson(['thin', 'args', 'sh', 'busybox', '--out-dir', out.path, '--', '-c', 'echo appended'])
    expect((listImage(result.image).manifest as any).app.exec.slice(1)).toEqual(['-c', 'echo appended'])
  })

  it('runs with the environment and working directory it declares', async () => {
    const result = buildJson([
      'thin',
      'envrun',
      'sh',
      'busybox',
      '--out-dir',
      out.path,
      '--engine',
      'native',
      '--env',
      'GREETING=hello',
      '--working-dir',
      '/tmp',
      '--exec',
      'sh -c \'echo "$GREETING from $(pwd)"\'',
    ])
    const run = await runAci(result.image, { mounts: result.mountsFile! })
    expect(run.stdout.trim()).toBe('hello from /tmp')
  })

  it('refuses a bad value before any Nix work, naming the rule', () => {
    const run = runCli(['thin', 'bad', 'sh', 'busybox', '--out-dir', out.path, '--port', 'web:tcp:70000'], {
      env: fixtureEnv({ PATH: '/nonexistent' }),
    })
    expect(run.status).toBe(1)
    expect(run.stderr.trim()).toBe("nix2aci: --port 'web:tcp:70000': port must be in 1-65535 range")
  })

  for (const kind of ['thin', 'fat'] as const) {
    it.skipIf(!onPath('acbuild'))(`give JSON-equal manifests through both engines (${kind})`, () => {
      const viaAcbuild = build('acbuild', kind).manifest
      const viaNative = build('native', kind).manifest
      expect(viaAcbuild).toEqual(viaNative)
    })
  }
})

describe('option values', () => {
  const cannotCarry =
    "which rkt's --volume=NAME,kind=host,source=PATH and the shell's word splitting of $(cat NAME.mounts) cannot carry"
  const long = 'a'.repeat(MAX_IMAGE_NAME + 1)
  it.each([
    [['--supplementary-gid', 'abc'], "--supplementary-gid 'abc': must be a whole number from 0 to 4294967294"],
    [
      ['--supplementary-gid', '4294967296'],
      "--supplementary-gid '4294967296': must be a whole number from 0 to 4294967294",
    ],
    [['--key', 'someone@example.com'], '--key needs --sign'],
    [['--port', 'a:tcp:0x50'], "--port 'a:tcp:0x50': port '0x50' must be written in decimal digits"],
    [['--port', 'a:tcp: 80'], "--port 'a:tcp: 80': port ' 80' must be written in decimal digits"],
    [['--port', 'a:tcp:1e3'], "--port 'a:tcp:1e3': port '1e3' must be written in decimal digits"],
    [
      ['--mount', 'd:/d', '--volume', 'd=/srv/my data'],
      `--volume 'd=/srv/my data': the host path holds a space, ${cannotCarry}`,
    ],
    [
      ['--mount', 'd:/d', '--volume', 'd=/srv/a,b'],
      `--volume 'd=/srv/a,b': the host path holds a comma, ${cannotCarry}`,
    ],
    [
      ['--exec', 'bin/../../../../usr/bin/env'],
      "--exec 'bin/../../../../usr/bin/env': 'bin/../../../../usr/bin/env' leads out of the profile: a program without a leading / is taken inside it",
    ],
  ])('%j is refused before any Nix work, in one line', (args, message) => {
    const dir = join(out.path, 'refused')
    const run = runCli(['thin', 'bad', 'sh', 'busybox', '--out-dir', dir, ...args], {
      env: fixtureEnv({ PATH: '/nonexistent' }),
    })
    expect(run.status).toBe(1)
    expect(run.stderr).toBe(`nix2aci: ${message}\n`)
    expect(existsSync(dir)).toBe(false)
  })

  it.each([
    [
      ['thin', 'bad', 'bin/../../../../usr/bin/env', 'busybox'],
      "binary 'bin/../../../../usr/bin/env' leads out of the profile: a path with a / is taken inside the profile",
    ],
    [
      ['fat', long, 'sh', 'busybox'],
      `image name '${'a'.repeat(40)}...' is too long: ${MAX_IMAGE_NAME + 1} characters, at most ${MAX_IMAGE_NAME} ` +
        "(files named after it, such as nix-env's <name>.profile-N-link.tmp-PID-RANDOM, must fit the file system's 255-byte limit)",
    ],
  ])('%j is refused before any Nix work, in one line', (args, message) => {
    const run = runCli([...args, '--out-dir', join(out.path, 'refused')], { env: fixtureEnv({ PATH: '/nonexistent' }) })
    expect(run.status).toBe(1)
    expect(run.stderr).toBe(`nix2aci: ${message}\n`)
  })

  it('takes the longest image name whose files fit the file system', () => {
    const result = buildJson(['thin', 'a'.repeat(MAX_IMAGE_NAME), 'sh', 'busybox', '--out-dir', out.path])
    expect(existsSync(result.image)).toBe(true)
    expect(existsSync(result.profile!)).toBe(true)
  })

  it('takes an absolute program only where the image has it', () => {
    const fat = buildJson(['fat', 'abs', 'sh', 'busybox', '--out-dir', out.path, '--exec', '/bin/sh -c true'])
    expect((listImage(fat.image).manifest as any).app.exec).toEqual(['/bin/sh', '-c', 'true'])
    for (const [kind, program] of [
      ['thin', '/usr/bin/env'],
      ['fat', '/bin/../../usr/bin/env'],
      ['fat', '/etc/hosts'],
    ] as const) {
      const run = runCli([kind, 'abs-bad', 'sh', 'busybox', '-q', '--out-dir', out.path, '--pre-start', program])
      expect(run.status).toBe(1)
      expect(run.stderr).toBe(
        `nix2aci: program '${program}' is not in the image: an absolute path must name an executable in the ` +
          "packages' closure (/nix/store/...) or reached through the profile's links (/bin/...)\n",
      )
    }
    expect(existsSync(join(out.path, 'abs-bad.aci'))).toBe(false)
  })
})

describe('repeated names', () => {
  const repeated = [
    ...['--label', 'a=1', '--label', 'b=2', '--label', 'a=3'],
    ...['--env', 'E=1', '--env', 'F=2', '--env', 'E=3'],
    ...['--annotation', 'a=1', '--annotation', 'b=2', '--annotation', 'a=3'],
    ...['--port', 'p:tcp:80', '--port', 'q:tcp:81', '--port', 'p:tcp:82'],
    ...['--isolator', 'resource/memory={"limit":"1G"}', '--isolator', 'resource/cpu={"shares":"1"}'],
    ...['--isolator', 'resource/memory={"limit":"2G"}'],
  ]
  const buildWith = (engine: 'native' | 'acbuild') => {
    const args = ['fat', 'repeated', 'sh', 'busybox', '--out-dir', join(out.path, engine), '--engine', engine]
    return listImage(buildJson([...args, ...repeated]).image).manifest as Record<string, any>
  }
  const names = (list: Array<{ name: string }>) => list.map((item) => item.name)

  it('keep the first place for variables and annotations and move to the end otherwise, as in acbuild', () => {
    const manifest = buildWith('native')
    expect(manifest.labels).toEqual([
      { name: 'arch', value: 'amd64' },
      { name: 'os', value: 'linux' },
      { name: 'b', value: '2' },
      { name: 'a', value: '3' },
    ])
    expect(manifest.app.environment).toEqual([
      { name: 'E', value: '3' },
      { name: 'F', value: '2' },
    ])
    expect(manifest.annotations).toEqual([
      { name: 'a', value: '3' },
      { name: 'b', value: '2' },
    ])
    expect(names(manifest.app.ports)).toEqual(['q', 'p'])
    expect(names(manifest.app.isolators)).toEqual(['resource/cpu', 'resource/memory'])
  })

  it.skipIf(!onPath('acbuild'))('give the manifest acbuild gives', () => {
    expect(buildWith('acbuild')).toEqual(buildWith('native'))
  })
})
