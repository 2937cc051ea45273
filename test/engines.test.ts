// The two engines, each on its own, and against each other: for one plan, acbuild and the native
// writer must produce JSON-equal manifests and the same rootfs entries.
import { afterAll, describe, expect, it } from 'vitest'
import { actoolValidate, buildJson, listImage, makeTempDir, onPath, runCli } from './helpers/cli.js'

const acbuildInstalled = onPath('acbuild')
const dirs = { acbuild: makeTempDir(), native: makeTempDir() }
afterAll(() => Object.values(dirs).forEach((dir) => dir.remove()))

function buildWith(engine: 'acbuild' | 'native', kind: 'thin' | 'fat', ...args: string[]) {
  const result = buildJson([kind, ...args, '--out-dir', dirs[engine].path, '--engine', engine])
  expect(result.engine).toBe(engine)
  expect(actoolValidate(result.image).status).toBe(0)
  return { result, ...listImage(result.image) }
}

describe('native engine', () => {
  it('writes entries owned by 0:0 with no user names and the Nix store time', () => {
    const { entries } = buildWith('native', 'thin', 'hello', 'hello', 'hello')
    expect(entries.length).toBeGreaterThan(3)
    for (const entry of entries) expect(entry).toMatch(/^\S+ 0\/0 rootfs/)
  })
})

describe.skipIf(!acbuildInstalled)('acbuild engine against the native engine', () => {
  for (const kind of ['thin', 'fat'] as const) {
    it(`agrees on the manifest and rootfs of a ${kind} two-package image`, () => {
      const args = [`${kind}-agree`, 'sh', 'busybox', 'hello']
      const viaAcbuild = buildWith('acbuild', kind, ...args)
      const viaNative = buildWith('native', kind, ...args)
      expect(viaAcbuild.manifest).toEqual(viaNative.manifest)
      expect(viaAcbuild.entries).toEqual(viaNative.entries)
    })
  }

  it('is what auto picks when acbuild is on PATH, unless the compression is one acbuild cannot write', () => {
    expect(buildJson(['thin', 'auto', 'hello', 'hello', '--out-dir', dirs.acbuild.path]).engine).toBe('acbuild')
    const xz = ['thin', 'auto-xz', 'hello', 'hello', '--out-dir', dirs.acbuild.path, '--compression', 'xz']
    expect(buildJson(xz).engine).toBe('native')
    const forced = runCli([...xz, '--engine', 'acbuild'])
    expect(forced.status).toBe(1)
    expect(forced.stderr.trim()).toBe(
      'nix2aci: --engine acbuild writes gzip images only; use --engine native for --compression xz',
    )
  })
})
