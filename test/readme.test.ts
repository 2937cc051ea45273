// The README's examples, read out of README.md and run as written, in order, as a reader following it
// would, so the README cannot drift from what works. They run in a scratch directory that looks like
// the checkout, so that the ACIs/ they write is never the user's own.
import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { runAci } from './harness/run-aci.js'
import { nixHasFlakes } from './helpers/closure.js'
import { actoolValidate, listImage, makeTempDir, onPath, pathWithout, repoRoot, testCacheHome } from './helpers/cli.js'
import { makeThrowawayKey } from './helpers/gpg.js'

const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8')

function readmeBlock(marker: string): string {
  const match = new RegExp(`<!-- readme-test: ${marker} -->\\n\`\`\`\\w+\\n([\\s\\S]*?)\`\`\``).exec(readme)
  if (!match) throw new Error(`README.md has no block marked ${marker}`)
  return match[1]!
}

/** A scratch directory with what the README's blocks name from the checkout: commands, bundles, fixtures, spec. */
function scratchCheckout(): string {
  const checkout = makeTempDir('nix2aci-readme-')
  onTestFinished(() => checkout.remove())
  for (const entry of ['nix2aci', 'buildThinACI', 'buildFatACI', 'dist', 'nix2aci.example.json', 'nix2aci.example.nix'])
    symlinkSync(join(repoRoot, entry), join(checkout.path, entry))
  // A copy, not a link: Nix refuses a path: flake whose directory is a link ("escapes from").
  cpSync(join(repoRoot, 'fixtures'), join(checkout.path, 'fixtures'), { recursive: true })
  return checkout.path
}

describe('README', () => {
  it('opens with the setup-and-build command and the test command', () => {
    expect(readme).toContain(
      '```sh\n./scripts/setup.sh && NIX_PATH=nixpkgs=$PWD/fixtures ./buildThinACI go1.5-etcd-v2.1.2 etcd etcd\nnpm test\n```',
    )
  })

  it('shows the spec that nix2aci.example.json holds', () => {
    const example = JSON.parse(readFileSync(join(repoRoot, 'nix2aci.example.json'), 'utf8'))
    expect(JSON.parse(readmeBlock('spec'))).toEqual(example)
  })

  it('shows the Nix spec that nix2aci.example.nix holds', () => {
    expect(readmeBlock('nix-spec')).toBe(readFileSync(join(repoRoot, 'nix2aci.example.nix'), 'utf8'))
  })

  // Native engine only: the engines are compared by the examples above; this is about naming packages.
  it.skipIf(!nixHasFlakes)(
    'runs its Nix-style package examples as typed, and the images pass actool and run',
    async () => {
      const { NIX_PATH: _nixPath, ...hostEnv } = process.env
      const scratch = makeTempDir()
      onTestFinished(() => scratch.remove())
      const env = { ...hostEnv, PATH: pathWithout('acbuild', scratch.path), XDG_CACHE_HOME: testCacheHome }
      const checkout = scratchCheckout()
      const acis = join(checkout, 'ACIs')
      const run = spawnSync('bash', ['-e', '-c', readmeBlock('nix-inputs')], { cwd: checkout, env, encoding: 'utf8' })
      expect(run.status, run.stderr).toBe(0)
      expect(run.stdout).toMatch(/2 built, 0 failed/)
      const runs: [string, string[], RegExp][] = [
        ['etcd-expr', ['--version'], /etcd Version: 3\./],
        ['hello-attr', [], /^Hello, world!\n$/],
        ['hello-arg', [], /^Hello, world!\n$/],
        ['hello-link', [], /^Hello, world!\n$/],
        ['etcd-drv', ['--version'], /etcd Version: 3\./],
        ['hello-flake', [], /^Hello, world!\n$/],
        ['etcd-v1', ['--version'], /etcd Version: 3\./],
        ['hello-nix', [], /^Hello, world!\n$/],
      ]
      for (const [name, args, output] of runs) {
        const image = join(acis, `${name}.aci`)
        expect(actoolValidate(image).status, name).toBe(0)
        const app = await runAci(image, { mounts: join(acis, `${name}.mounts`), args })
        expect(app.stdout, name).toMatch(output)
      }
    },
  )

  // With each engine `auto` picks for thin images: native with acbuild hidden, and acbuild where installed.
  const runsItsExamples = 'runs its examples as typed, and the images they build pass actool and run'
  it(`${runsItsExamples} (native engine)`, () => runExamples('native'))
  it.skipIf(!onPath('acbuild'))(`${runsItsExamples} (acbuild engine)`, () => runExamples('acbuild'))

  async function runExamples(engine: 'native' | 'acbuild'): Promise<void> {
    const examples = readmeBlock('examples')
    expect(examples).toContain('./buildThinACI go1.5-etcd-v2.1.2 etcd etcd')
    expect(examples).toContain('./buildThinACI bbpython35 sh busybox python35')
    // The signing example names your key; here a throwaway key stands in for it.
    const key = makeThrowawayKey('You <you@example.com>')
    onTestFinished(() => key.remove())
    // No NIX_PATH, even the caller's: the README must set it itself.
    const { NIX_PATH: _nixPath, ...hostEnv } = process.env
    const scratch = makeTempDir()
    onTestFinished(() => scratch.remove())
    const PATH = engine === 'native' ? pathWithout('acbuild', scratch.path) : hostEnv.PATH
    const env = { ...hostEnv, PATH, GNUPGHOME: key.home, XDG_CACHE_HOME: testCacheHome }
    const checkout = scratchCheckout()
    const acis = join(checkout, 'ACIs')
    const userAcis = join(repoRoot, 'ACIs')
    const usersBefore = existsSync(userAcis) ? readdirSync(userAcis) : null
    const script = ['examples', 'options', 'sign', 'check', 'spec-build'].map(readmeBlock).join('\n')
    const run = spawnSync('bash', ['-e', '-c', script], { cwd: checkout, env, encoding: 'utf8' })
    expect(run.status, run.stderr).toBe(0)
    expect(existsSync(userAcis) ? readdirSync(userAcis) : null, "the checkout's own ACIs/").toEqual(usersBefore)
    expect(run.stdout).toContain(`(thin, ${engine} engine`)

    for (const name of ['go1.5-etcd-v2.1.2', 'bbpython35', 'hello-fat', 'etcd-node', 'hello-signed']) {
      expect(actoolValidate(join(acis, `${name}.aci`)).status, name).toBe(0)
    }
    const etcd = await runAci(join(acis, 'go1.5-etcd-v2.1.2.aci'), {
      mounts: join(acis, 'go1.5-etcd-v2.1.2.mounts'),
      args: ['--version'],
    })
    expect(etcd.stdout).toMatch(/etcd Version: 3\./)
    const python = await runAci(join(acis, 'bbpython35.aci'), {
      mounts: join(acis, 'bbpython35.mounts'),
      args: ['-c', 'python3 -c "import json; print(json.dumps([1]))"'],
    })
    expect(python.stdout.trim()).toBe('[1]')
    const hello = await runAci(join(acis, 'hello-fat.aci'), { mounts: join(acis, 'hello-fat.mounts') })
    expect(hello.stdout.trim()).toBe('Hello, world!')

    const node = listImage(join(acis, 'etcd-node.aci')).manifest as { app: Record<string, unknown> }
    expect(node.app.exec).toEqual([
      expect.stringMatching(/bin\/etcd$/),
      '--data-dir',
      '/var/lib/etcd',
      '--name',
      'node1',
    ])
    expect(node.app.workingDirectory).toBe('/var/lib/etcd')
    expect(run.stderr).toContain('gpg: Good signature')
    expect(run.stdout).toMatch(/name: +go1\.5-etcd-v2\.1\.2/)
    expect(run.stdout).toMatch(/ACIs\/go1\.5-etcd-v2\.1\.2\.aci: valid/)
    expect(run.stdout).toMatch(
      /^rkt run --insecure-options=image --volume=.* ACIs\/go1\.5-etcd-v2\.1\.2\.aci -- --version$/m,
    )
    expect(run.stdout).toMatch(/3 built, 0 failed/)
  }

  it('runs its export, import, copy and unit blocks as written: the imported image runs, systemd-analyze takes the unit', async () => {
    const checkout = scratchCheckout()
    // systemd-analyze checks that ExecStart's program is there: a stand-in rkt on PATH, where CI has none.
    const stub = makeTempDir()
    onTestFinished(() => stub.remove())
    writeFileSync(join(stub.path, 'rkt'), '#!/bin/sh\n', { mode: 0o755 })
    const { NIX_PATH: _nixPath, ...hostEnv } = process.env
    const env = { ...hostEnv, PATH: `${stub.path}:${hostEnv.PATH}`, XDG_CACHE_HOME: testCacheHome }
    const script = ['travel', 'unit'].map(readmeBlock).join('\n')
    const run = spawnSync('bash', ['-e', '-c', script], { cwd: checkout, env, encoding: 'utf8' })
    expect(run.status, run.stderr).toBe(0)
    expect(run.stdout).toMatch(/^imported bb: imported\/bb\.aci/m)
    expect(run.stdout).toMatch(/^imported bb: piped\/bb\.aci/m)
    expect(run.stdout).toMatch(/^nix-copy-closure --to deploy@web1 \/nix\/store\/\S+-user-environment$/m)
    const imported = join(checkout, 'imported')
    const bb = await runAci(join(imported, 'bb.aci'), { mounts: join(imported, 'bb.mounts'), args: ['-c', 'echo ok'] })
    expect(bb.stdout.trim(), bb.stderr).toBe('ok')
    expect(readFileSync(join(checkout, 'bb.service'), 'utf8')).toMatch(/^ExecStart=\S+\/rkt run /m)
  })

  it('runs its publish block as written: the image, its signature, the key and the pages', () => {
    const checkout = scratchCheckout()
    const key = makeThrowawayKey('You <you@example.com>')
    onTestFinished(() => key.remove())
    const { NIX_PATH: _nixPath, ...hostEnv } = process.env
    const env = { ...hostEnv, GNUPGHOME: key.home, XDG_CACHE_HOME: testCacheHome }
    const run = spawnSync('bash', ['-e', '-c', readmeBlock('publish')], { cwd: checkout, env, encoding: 'utf8' })
    expect(run.status, run.stderr).toBe(0)
    const tree = join(checkout, 'public', 'apps')
    expect(readdirSync(tree).sort()).toEqual([
      'hello',
      'hello-1.0-linux-amd64.aci',
      'hello-1.0-linux-amd64.aci.asc',
      'index.html',
      'pubkeys.gpg',
    ])
    expect(readFileSync(join(tree, 'hello', 'index.html'), 'utf8')).toContain(
      '<meta name="ac-discovery" content="example.com/apps https://{name}-{version}-{os}-{arch}.{ext}">',
    )
  })
})
