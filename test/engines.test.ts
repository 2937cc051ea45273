// The two engines, each on its own, and against each other: for one plan, acbuild and the native
// writer must produce JSON-equal manifests and the same rootfs entries.
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  actoolValidate,
  buildJson,
  fixtureEnv,
  listImage,
  makeTempDir,
  onPath,
  pathWithout,
  runCli,
} from './helpers/cli.js'

const acbuildInstalled = onPath('acbuild')
const dirs = { acbuild: makeTempDir(), native: makeTempDir() }
afterAll(() => Object.values(dirs).forEach((dir) => dir.remove()))

function buildWith(engine: 'acbuild' | 'native', kind: 'thin' | 'fat' | 'layered', ...args: string[]) {
  const result = buildJson([kind, ...args, '--out-dir', dirs[engine].path, '--engine', engine])
  expect(result.engine).toBe(engine)
  expect(actoolValidate(result.image).status).toBe(0)
  return { result, ...listImage(result.image) }
}

/**
 * `tar --full-time -tv` lines, every entry manifest included: without --numeric-owner tar shows
 * the user and group names an entry carries, and only ids when it has none. In UTC, as tar prints
 * local time.
 */
function verboseListing(image: string): string[] {
  const env = { ...process.env, TZ: 'UTC' }
  return execFileSync('tar', ['--full-time', '-tvf', image], { encoding: 'utf8', env, maxBuffer: 1 << 28 })
    .trim()
    .split('\n')
}

describe('native engine', () => {
  // Nix sets every store file's mtime to 1 (1970-01-01 00:00:01); the made-up entries take the same.
  it('writes entries owned by 0:0 with no user names and the Nix store time', () => {
    for (const kind of ['thin', 'fat'] as const) {
      const { result } = buildWith('native', kind, `times-${kind}`, 'hello', 'hello')
      const lines = verboseListing(result.image)
      expect(lines.length).toBeGreaterThan(kind === 'thin' ? 5 : 20)
      for (const line of lines) expect(line).toMatch(/^\S+ 0\/0 +\d+ 1970-01-01 00:00:01 (manifest|rootfs)/)
    }
  })
})

describe('--engine auto', () => {
  it('picks the native engine when acbuild is not on PATH', () => {
    const scratch = makeTempDir()
    try {
      const args = ['thin', 'auto-native', 'hello', 'hello', '--out-dir', dirs.native.path, '--engine', 'auto']
      const env = fixtureEnv({ PATH: pathWithout('acbuild', scratch.path) })
      expect(buildJson(args, { env }).engine).toBe('native')
    } finally {
      scratch.remove()
    }
  })
})

describe.skipIf(!acbuildInstalled)('acbuild engine against the native engine', () => {
  for (const kind of ['thin', 'fat', 'layered'] as const) {
    it(`agrees on the manifest and rootfs of a ${kind} two-package image`, () => {
      const args = [`${kind}-agree`, 'sh', 'busybox', 'hello']
      const viaAcbuild = buildWith('acbuild', kind, ...args)
      const viaNative = buildWith('native', kind, ...args)
      expect(viaAcbuild.manifest).toEqual(viaNative.manifest)
      expect(viaAcbuild.entries).toEqual(viaNative.entries)
      if (kind === 'layered') {
        // The layers are the native engine's whichever engine writes the app image: the same bytes.
        const layersOf = (dir: string) =>
          Object.fromEntries(readdirSync(join(dir, 'layers')).map((f) => [f, readFileSync(join(dir, 'layers', f))]))
        expect(layersOf(dirs.acbuild.path)).toEqual(layersOf(dirs.native.path))
      }
    })
  }

  it('agrees on every manifest option, with names given twice and acbuild defaults restated', () => {
    // acbuild puts a label, port, mount or isolator added again last, and an environment variable or
    // annotation in place: the engine adds each name once, so both follow the plan.
    const options = [
      ...['--label', 'b=1', '--label', 'a=2', '--label', 'b=3', '--label', 'os=linux'],
      ...['--env', 'B=1', '--env', 'A=2', '--env', 'B=3'],
      ...['--port', 'p2:tcp:81', '--port', 'p1:udp:53:2:socket-activated', '--port', 'p2:tcp:82'],
      ...['--isolator', 'resource/memory={"limit":"1G"}', '--isolator', 'resource/cpu={"limit":"1"}'],
      ...['--isolator', 'resource/memory={"limit":"2G"}'],
      ...['--annotation', 'y=1', '--annotation', 'x=2', '--annotation', 'y=3'],
      ...['--mount', 'data:/data', '--mount', 'config:/etc/app:ro', '--volume', 'data=/tmp'],
      ...['--user', '0', '--group', '0', '--supplementary-gid', '10', '--supplementary-gid', '0'],
      ...['--working-dir', '/tmp', '--exec', 'sh -c "exit 0"', '--pre-start', 'true', '--post-stop', 'echo x'],
      ...['--image-version', '1.0'],
    ]
    const args = ['every-option', 'sh', 'busybox', ...options]
    const viaAcbuild = buildWith('acbuild', 'thin', ...args)
    const viaNative = buildWith('native', 'thin', ...args)
    expect(viaAcbuild.manifest).toEqual(viaNative.manifest)
    expect(viaAcbuild.entries).toEqual(viaNative.entries)
  })

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

  it('is not what auto picks for a fat image, which acbuild cannot write reproducibly', () => {
    const fat = ['fat', 'auto-fat', 'hello', 'hello', '--out-dir', dirs.acbuild.path]
    const first = buildJson(fat)
    expect(first.engine).toBe('native')
    const bytes = readFileSync(first.image)
    expect(readFileSync(buildJson(fat).image).equals(bytes)).toBe(true)
  })

  it('says, when asked to write a fat image, that it is not reproducible', () => {
    const run = runCli(['fat', 'forced-fat', 'hello', 'hello', '--out-dir', dirs.acbuild.path, '--engine', 'acbuild'])
    expect(run.status, run.stderr).toBe(0)
    expect(run.stderr).toContain(
      'Writing the fat image (acbuild engine; not reproducible: acbuild dates entries with the build time)',
    )
  })
})
