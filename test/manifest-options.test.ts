// Every manifest option through the CLI: actool accepts the image, the manifest says what was asked,
// and, where acbuild is installed, both engines write the same manifest.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
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
