import { describe, expect, it } from 'vitest'
import { parseAppOptions } from '../../src/plan/app-options.js'
import { imageManifest, mountsFileContent } from '../../src/plan/manifest.js'
import { planImage, storeMountNames, type NixFacts } from '../../src/plan/plan.js'
import { APPC_VALID_AC_NAME } from '../helpers/ac-name.js'

const env = '/nix/store/aaaa-user-environment'
const facts: NixFacts = {
  storeDir: '/nix/store',
  userEnvironment: env,
  topLevel: ['bin', 'etc', 'share'],
  execPath: `${env}/bin/etcd`,
  closure: ['/nix/store/cccc-glibc-2.36', '/nix/store/bbbb-etcd-3.4.23', env],
}
const options = { name: 'go1.5-etcd-v2.1.2', os: 'linux', arch: 'amd64', resolvConf: true, app: parseAppOptions({}) }

describe('image plan', () => {
  it('declares one read-only mount per closure path plus resolv.conf for a thin image', () => {
    const plan = planImage(facts, { ...options, kind: 'thin' })
    expect(plan.app.mountPoints.map((m) => m.path)).toEqual([...[...facts.closure].sort(), '/etc/resolv.conf'])
    for (const mountPoint of plan.app.mountPoints) {
      expect(mountPoint.readOnly, mountPoint.path).toBe(true)
      expect(mountPoint.name).toMatch(APPC_VALID_AC_NAME)
    }
    expect(plan.storePaths).toEqual([])
  })

  it('links top-level entries to the user environment, but not over the skeleton dirs', () => {
    const plan = planImage(facts, { ...options, kind: 'thin' })
    expect(plan.skeleton).toEqual([
      { type: 'symlink', path: 'bin', target: `${env}/bin` },
      { type: 'dir', path: 'etc' },
      { type: 'dir', path: 'nix' },
      { type: 'dir', path: 'nix/store' },
      { type: 'symlink', path: 'share', target: `${env}/share` },
    ])
  })

  it('puts the closure inside a fat image and mounts only resolv.conf', () => {
    const plan = planImage(facts, { ...options, kind: 'fat' })
    expect(plan.storePaths).toEqual([...facts.closure].sort())
    expect(plan.app.mountPoints.map((m) => m.name)).toEqual(['resolv-conf'])
    expect(plan.skeleton).toContainEqual({
      type: 'file',
      path: 'etc/hosts',
      content: expect.stringContaining('localhost'),
    })
  })

  it('lays out the store directory Nix uses, when it is not /nix/store', () => {
    const plan = planImage(
      { ...facts, storeDir: '/opt/nix-store', topLevel: ['bin', 'opt'] },
      { ...options, kind: 'fat' },
    )
    expect(plan.storeDir).toBe('/opt/nix-store')
    expect(plan.skeleton.filter((entry) => entry.type === 'dir').map((entry) => entry.path)).toEqual([
      'etc',
      'opt',
      'opt/nix-store',
    ])
    expect(plan.skeleton.some((entry) => entry.path === 'opt' && entry.type === 'symlink')).toBe(false)
  })

  it('drops resolv.conf on request', () => {
    const plan = planImage(facts, { ...options, kind: 'fat', resolvConf: false })
    expect(plan.app.mountPoints).toEqual([])
    expect(imageManifest(plan).app).not.toHaveProperty('mountPoints')
  })

  it('refuses an invalid image name', () => {
    expect(() => planImage(facts, { ...options, kind: 'thin', name: 'Go-Etcd' })).toThrow(
      /invalid image name 'Go-Etcd'/,
    )
  })

  it('keeps mount names unique when store names differ only in case or punctuation', () => {
    const names = storeMountNames(['/nix/store/h-Foo.1', '/nix/store/h-foo-1', '/nix/store/h-foo_1'])
    expect(new Set(names).size).toBe(3)
    for (const name of names) expect(name).toMatch(APPC_VALID_AC_NAME)
  })

  it('writes the manifest acbuild would and a .mounts line rkt takes', () => {
    const plan = planImage(facts, { ...options, kind: 'thin' })
    const manifest = imageManifest(plan)
    expect(manifest).toMatchObject({ acKind: 'ImageManifest', acVersion: '0.8.5', name: 'go1.5-etcd-v2.1.2' })
    expect(manifest.labels).toEqual([
      { name: 'arch', value: 'amd64' },
      { name: 'os', value: 'linux' },
    ])
    expect(manifest.app).toEqual({
      exec: [`${env}/bin/etcd`],
      user: '0',
      group: '0',
      mountPoints: [
        // In store path order, whatever order the closure came in.
        { name: 'aaaa-user-environment', path: env, readOnly: true },
        { name: 'bbbb-etcd-3-4-23', path: '/nix/store/bbbb-etcd-3.4.23', readOnly: true },
        { name: 'cccc-glibc-2-36', path: '/nix/store/cccc-glibc-2.36', readOnly: true },
        { name: 'resolv-conf', path: '/etc/resolv.conf', readOnly: true },
      ],
    })
    const mounts = mountsFileContent(plan)
    expect(mounts.endsWith('\n')).toBe(true)
    expect(mounts.trim().split(' ')).toContain('--volume=resolv-conf,kind=host,source=/etc/resolv.conf,readOnly=true')
    expect(mounts.trim().split(' ')).toHaveLength(4)
  })
})

describe('plan with manifest options', () => {
  const app = parseAppOptions({
    label: ['os=plan9', 'channel=stable'],
    env: ['A=1', 'B=2', 'A=3'],
    mount: ['data:/data'],
    volume: ['data=/srv'],
    execArgs: ['--flag'],
  })

  it('replaces by name in place, as acbuild does, and appends exec arguments', () => {
    const plan = planImage(facts, { ...options, kind: 'thin', app })
    expect(plan.labels).toEqual([
      { name: 'arch', value: 'amd64' },
      { name: 'os', value: 'plan9' },
      { name: 'channel', value: 'stable' },
    ])
    expect(plan.app.environment).toEqual([
      { name: 'A', value: '3' },
      { name: 'B', value: '2' },
    ])
    expect(plan.app.exec).toEqual([`${env}/bin/etcd`, '--flag'])
  })

  it('writes a user mount without readOnly and its volume to .mounts', () => {
    const plan = planImage(facts, { ...options, kind: 'fat', app })
    const manifest = imageManifest(plan) as { app: { mountPoints: unknown[] } }
    expect(manifest.app.mountPoints.at(-1)).toEqual({ name: 'data', path: '/data' })
    expect(mountsFileContent(plan)).toMatch(/--volume=data,kind=host,source=\/srv\n$/)
  })

  it('refuses a user mount named like one the plan declares', () => {
    const clash = parseAppOptions({ mount: ['resolv-conf:/x'] })
    expect(() => planImage(facts, { ...options, kind: 'fat', app: clash })).toThrow(
      /'resolv-conf': a mount point of that name/,
    )
  })
})
