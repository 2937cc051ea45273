import { describe, expect, it } from 'vitest'
import { parseAppOptions, type AppOptions } from '../../src/plan/app-options.js'
import { formatMountsFile } from '../../src/aci/mounts.js'
import { imageManifest } from '../../src/plan/manifest.js'
import {
  MAX_IMAGE_NAME,
  checkImageName,
  closurePathOf,
  planImage,
  storeMountNames,
  type NixFacts,
} from '../../src/plan/plan.js'
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
    const mounts = formatMountsFile(plan.volumes)
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

  it('replaces by name as acbuild does, and appends exec arguments', () => {
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
    expect(formatMountsFile(plan.volumes)).toMatch(/--volume=data,kind=host,source=\/srv\n$/)
  })

  it('refuses a user mount named like one the plan declares', () => {
    const clash = parseAppOptions({ mount: ['resolv-conf:/x'] })
    expect(() => planImage(facts, { ...options, kind: 'fat', app: clash })).toThrow(
      /'resolv-conf': a mount point of that name/,
    )
  })
})

describe('repeated names', () => {
  // acbuild 0.4.0: `environment add` and `annotation add` replace in place; `label add`, `port add`
  // and `isolator add` remove the old entry and append the new one.
  const app = parseAppOptions({
    label: ['a=1', 'b=2', 'a=3'],
    env: ['E=1', 'F=2', 'E=3'],
    annotation: ['a=1', 'b=2', 'a=3'],
    port: ['p:tcp:80', 'q:tcp:81', 'p:tcp:82'],
    isolator: ['resource/memory={"limit":"1G"}', 'resource/cpu={"shares":"1"}', 'resource/memory={"limit":"2G"}'],
  })
  const plan = planImage(facts, { ...options, kind: 'thin', app })
  const names = (list: Array<{ name: string }>) => list.map((item) => item.name)

  it('keep the first place for variables and annotations', () => {
    expect(plan.app.environment).toEqual([
      { name: 'E', value: '3' },
      { name: 'F', value: '2' },
    ])
    expect(plan.annotations).toEqual([
      { name: 'a', value: '3' },
      { name: 'b', value: '2' },
    ])
  })

  it('move to the end for labels, ports and isolators', () => {
    expect(plan.labels).toEqual([
      { name: 'arch', value: 'amd64' },
      { name: 'os', value: 'linux' },
      { name: 'b', value: '2' },
      { name: 'a', value: '3' },
    ])
    expect(names(plan.app.ports)).toEqual(['q', 'p'])
    expect(plan.app.ports[1]!.port).toBe(82)
    expect(plan.app.isolators).toEqual([
      { name: 'resource/cpu', value: { shares: '1' } },
      { name: 'resource/memory', value: { limit: '2G' } },
    ])
    const platform = planImage(facts, { ...options, kind: 'thin', app: parseAppOptions({ label: ['arch=arm64'] }) })
    expect(platform.labels).toEqual([
      { name: 'os', value: 'linux' },
      { name: 'arch', value: 'arm64' },
    ])
  })

  it("are merged in linear time: each entry's name read a bounded number of times", () => {
    let reads = 0
    const count = 20_000
    const entry = (i: number) => ({
      get name() {
        reads++
        return `V${i % (count / 2)}`
      },
      value: String(i),
    })
    const many: AppOptions = {
      ...parseAppOptions({}),
      environment: Array.from({ length: count }, (_, i) => entry(i)),
      annotations: Array.from({ length: count }, (_, i) => entry(i)),
      labels: Array.from({ length: count }, (_, i) => entry(i)),
    }
    const merged = planImage(facts, { ...options, kind: 'thin', app: many })
    expect(merged.app.environment).toHaveLength(count / 2)
    expect(merged.app.environment[0]!.value).toBe(String(count / 2))
    expect(reads).toBeLessThan(3 * 4 * count)
  })
})

describe('image names', () => {
  it('refuses one too long for the names of its files, before any Nix work', () => {
    expect(() => checkImageName('a'.repeat(MAX_IMAGE_NAME))).not.toThrow()
    expect(() => checkImageName('a'.repeat(MAX_IMAGE_NAME + 1))).toThrow(
      new RegExp(
        `^image name 'a{40}\\.\\.\\.' is too long: ${MAX_IMAGE_NAME + 1} characters, at most ${MAX_IMAGE_NAME} .*255-byte limit`,
      ),
    )
  })
})

describe('paths inside the image', () => {
  it('lead into the closure through the rootfs links, or nowhere the image carries', () => {
    expect(closurePathOf(facts, '/bin/etcd')).toBe(`${env}/bin/etcd`)
    expect(closurePathOf(facts, '/share/../bin/etcd')).toBe(`${env}/bin/etcd`)
    expect(closurePathOf(facts, '/nix/store/cccc-glibc-2.36/lib/ld.so')).toBe('/nix/store/cccc-glibc-2.36/lib/ld.so')
    expect(closurePathOf(facts, '/nix/store/cccc-glibc-2.36-dev/bin/x')).toBeUndefined()
    expect(closurePathOf(facts, '/usr/bin/env')).toBeUndefined()
    expect(closurePathOf(facts, '/bin/../../usr/bin/env')).toBeUndefined()
    // The skeleton's own etc is not linked to the profile's.
    expect(closurePathOf(facts, '/etc/profile')).toBeUndefined()
  })

  it('refuses to mount a store path that a .mounts file cannot carry', () => {
    const odd = { ...facts, closure: [...facts.closure, '/nix/store/dddd-what?'] }
    expect(() => planImage(odd, { ...options, kind: 'thin' })).toThrow(
      /^cannot mount \/nix\/store\/dddd-what\? from the host: the host path holds '\?'/,
    )
  })
})
