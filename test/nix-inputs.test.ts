// Packages named the ways Nix users name them (-A, -E, -I, --arg, --argstr, --option, --show-trace,
// out-links, .drv paths, flakes, a spec written in Nix), each built from the fixtures by the real
// CLI, checked by actool and run under the run harness; and bad input, refused in one line.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runAci } from './harness/run-aci.js'
import { nixHasFlakes } from './helpers/closure.js'
import {
  actoolValidate,
  buildJson,
  fixtureEnv,
  fixtures,
  makeTempDir,
  repoRoot,
  runCli,
  type CliRun,
} from './helpers/cli.js'
import type { BuildResult } from '../src/pipeline/build-image.js'

const out = makeTempDir('nix2aci-inputs-')
afterAll(() => out.remove())
const outDir = join(out.path, 'ACIs')

const build = (kind: 'thin' | 'fat', name: string, binary: string, args: string[], cwd?: string) =>
  buildJson([kind, name, binary, ...args, '--out-dir', outDir, '--engine', 'native'], cwd ? { cwd } : {})

/** The image passes actool and its app runs from the image and its .mounts file alone. */
async function runImage(result: BuildResult, args: string[] = []): Promise<string> {
  expect(actoolValidate(result.image).status).toBe(0)
  const run = await runAci(result.image, { ...(result.mountsFile ? { mounts: result.mountsFile } : {}), args })
  expect(run.status, run.stderr).toBe(0)
  return run.stdout
}

const sayHello = async (result: BuildResult) => expect((await runImage(result)).trim()).toBe('Hello, world!')
const etcdVersion = async (result: BuildResult) =>
  expect(await runImage(result, ['--version'])).toMatch(/etcd Version: 3\./)

/** What a profile holds, by name (`nix-env -q`). */
const profileNames = (profile: string) =>
  execFileSync('nix-env', ['-p', profile, '-q'], { encoding: 'utf8' }).trim().split('\n').sort()

describe('packages from Nix expressions and options', () => {
  it('takes -E, a list of packages, with no positional package', async () => {
    const result = build('thin', 'etcd-expr', 'etcd', ['-E', 'with import ./fixtures {}; [ etcd busybox ]'])
    await etcdVersion(result)
    expect(profileNames(result.profile!)).toEqual(['busybox-1.35.0', 'etcd-3.4.23'])
  })

  it('takes -A beside positional packages, and -A selecting in -E, as nix-build does', async () => {
    const both = build('thin', 'hello-attr', 'hello', ['busybox', '-A', 'hello', '-f', fixtures])
    await sayHello(both)
    expect(profileNames(both.profile!)).toEqual(['busybox-1.35.0', 'hello-1.0'])
    await sayHello(build('fat', 'hello-expr-attr', 'hello', ['-E', 'import ./fixtures', '-A', 'hello']))
  })

  it('passes --argstr, --arg, -I, --option and --show-trace to Nix', async () => {
    await sayHello(
      build('thin', 'hello-argstr', 'hello', ['-E', '{ x }: (import ./fixtures {}).${x}', '--argstr', 'x', 'hello']),
    )
    const etcd = build('thin', 'etcd-include', 'etcd', [
      ...['-f', '<fx>', '-I', 'fx=./fixtures', '-A', 'etcd'],
      ...['--arg', 'system', '"x86_64-linux"', '--option', 'max-jobs', '2', '--show-trace'],
    ])
    await etcdVersion(etcd)
  })

  it('takes a nix-build out-link, a link into a store path, and a .drv (realised first)', async () => {
    const scratch = makeTempDir()
    try {
      execFileSync('nix-build', [fixtures, '-A', 'hello', '-o', join(scratch.path, 'result')], { stdio: 'ignore' })
      await sayHello(build('thin', 'hello-link', 'hello', ['./result'], scratch.path))
      symlinkSync(join(scratch.path, 'result', 'bin', 'hello'), join(scratch.path, 'inner'))
      expect(build('thin', 'hello-inner', 'hello', [join(scratch.path, 'inner')]).imageId).toBeDefined()
      const drvRoot = join(scratch.path, 'etcd.drv')
      execFileSync('nix-instantiate', ['--add-root', drvRoot, fixtures, '-A', 'etcd'], { stdio: 'ignore' })
      const drv = execFileSync('readlink', [drvRoot], { encoding: 'utf8' }).trim()
      await etcdVersion(build('fat', 'etcd-drv', 'etcd', [drv]))
    } finally {
      scratch.remove()
    }
  })
})

describe.skipIf(!nixHasFlakes)('packages from flakes (needs Nix 2.4 or later)', () => {
  it('takes path:DIR#ATTR, .#ATTR and git+file:...#ATTR', async () => {
    await sayHello(build('fat', 'hello-flake-path', 'hello', [`path:${fixtures}#hello`]))
    await sayHello(build('thin', 'hello-flake-dot', 'hello', ['.#hello'], fixtures))
    await sayHello(
      build('thin', 'hello-flake-git', 'hello', [`git+file://${repoRoot.replace(/\/$/, '')}?dir=fixtures#hello`]),
    )
    expect(existsSync(join(fixtures, 'flake.lock'))).toBe(false)
  })
})

describe('a spec written in Nix', () => {
  it('builds images.nix: one evaluation, real packages, a function given --argstr', async () => {
    const dir = makeTempDir()
    try {
      const spec = join(dir.path, 'images.nix')
      writeFileSync(
        spec,
        `{ tag ? "dev" }:
let pkgs = import ${fixtures} { }; in
{ outDir = "out";
  images = [
    { name = "etcd-\${tag}"; binary = "etcd"; packages = [ pkgs.etcd pkgs.busybox ]; }
    { name = "hello"; kind = "fat"; binary = "hello"; packages = [ pkgs.hello ]; env = [ "WHO=\${pkgs.hello.name}" ]; }
  ]; }
`,
      )
      // A nix-instantiate in front of the real one, that notes each call: a spy, not a mock.
      const bin = join(dir.path, 'bin')
      const calls = join(dir.path, 'instantiate-calls')
      mkdirSync(bin)
      const real = execFileSync('sh', ['-c', 'command -v nix-instantiate'], { encoding: 'utf8' }).trim()
      writeFileSync(join(bin, 'nix-instantiate'), `#!/bin/sh\necho "call $1 $2" >> ${calls}\nexec ${real} "$@"\n`, {
        mode: 0o755,
      })
      const run = runCli(['build', spec, '--argstr', 'tag', 'v1', '--json'], {
        env: fixtureEnv({ PATH: `${bin}:${process.env.PATH}` }),
      })
      expect(run.status, run.stderr).toBe(0)
      const report = JSON.parse(run.stdout) as { images: { name: string; result: BuildResult }[] }
      expect(report.images.map((image) => image.name)).toEqual(['etcd-v1', 'hello'])
      await etcdVersion(report.images[0]!.result)
      expect(report.images[0]!.result.image).toBe(join(dir.path, 'out', 'etcd-v1.aci'))
      await sayHello(report.images[1]!.result)
      // Its first words; the wrapper expression it evaluates spans lines.
      expect(readFileSync(calls, 'utf8')).toBe('call --eval --strict\n')
    } finally {
      dir.remove()
    }
  })
})

describe('a JSON spec', () => {
  it('takes the same fields: attr, expr, argstr, and out-links relative to the spec file', async () => {
    const dir = makeTempDir()
    try {
      execFileSync('nix-build', [fixtures, '-A', 'hello', '-o', join(dir.path, 'result')], { stdio: 'ignore' })
      const spec = join(dir.path, 'spec.json')
      const images = [
        { name: 'spec-link', binary: 'hello', packages: ['./result'] },
        { name: 'spec-attr', binary: 'hello', file: fixtures, attr: ['hello'] },
        {
          name: 'spec-expr',
          binary: 'hello',
          expr: '{ x }: (import <fx> {}).${x}',
          argstr: { x: 'hello' },
          include: ['fx=fixtures'],
        },
      ]
      writeFileSync(spec, JSON.stringify({ outDir: 'out', images }))
      // `include` is relative to the spec file as well.
      symlinkSync(fixtures, join(dir.path, 'fixtures'))
      const run = runCli(['build', spec, '--json'])
      expect(run.status, run.stderr).toBe(0)
      const report = JSON.parse(run.stdout) as { images: { result: BuildResult }[] }
      for (const image of report.images) await sayHello(image.result)
    } finally {
      dir.remove()
    }
  })
})

describe('bad input, in one line', () => {
  const scratch = makeTempDir()
  afterAll(() => scratch.remove())
  const fails = (args: string[], cwd?: string): CliRun => {
    const outDir = join(scratch.path, 'out')
    const run = runCli(['thin', 'bad', 'hello', ...args, '--out-dir', outDir, '--quiet'], cwd ? { cwd } : {})
    expect(run.status).toBe(1)
    expect(existsSync(join(scratch.path, 'out'))).toBe(false)
    return run
  }
  const oneLine = (args: string[], cwd?: string) => {
    const { stderr } = fails(args, cwd)
    expect(stderr.trimEnd().split('\n')).toHaveLength(1)
    return stderr
  }

  it("refuses an expression that does not evaluate, with Nix's position and excerpt; --show-trace adds the trace", () => {
    const [first, ...details] = fails(['-E', 'with import ./fixtures {}; [ etcd nope ]']).stderr.trimEnd().split('\n')
    expect(first).toBe("nix2aci: cannot evaluate the -E expression: undefined variable 'nope'")
    expect(details).toEqual([
      '  at «string»:1:35:',
      '       1| with import ./fixtures {}; [ etcd nope ]',
      '        |                                   ^',
    ])
    const runtime = ['-E', '(import ./fixtures {}).etcd.nope']
    expect(fails(runtime).stderr).toContain("(use '--show-trace' to show detailed location information)")
    expect(fails([...runtime, '--show-trace']).stderr).toMatch(
      /… while evaluating the attribute 'etcd\.nope'\n  at .*fixtures\/default\.nix:\d+:\d+:/,
    )
  })

  it('refuses no packages at all, and an expression of none', () => {
    expect(oneLine([])).toBe('nix2aci: no packages: name them as arguments, with -A ATTR or with -E EXPR\n')
    expect(oneLine(['-E', '[ ]'])).toBe('nix2aci: -E "[ ]" evaluates to no packages\n')
  })

  it.skipIf(!nixHasFlakes)('refuses a flake reference to a missing attribute', () => {
    expect(oneLine([`path:${fixtures}#nope`])).toMatch(
      /^nix2aci: cannot build path:.*#nope: flake 'path:.*' does not provide attribute 'packages\.x86_64-linux\.nope'/,
    )
  })

  it('refuses an out-link that points outside the store, and a missing one', () => {
    const outside = join(scratch.path, 'outside')
    symlinkSync('/etc', outside)
    expect(oneLine([outside])).toBe(
      `nix2aci: ${outside} is not in the Nix store (it is /etc): give a nix-build out-link or another link into /nix/store\n`,
    )
    expect(oneLine(['./no-such-result'])).toBe('nix2aci: no such file: ./no-such-result\n')
    symlinkSync('/etc', join(scratch.path, 'result'))
    expect(oneLine(['result'], scratch.path)).toMatch(
      /^nix2aci: unknown package 'result' in .*; to take the file of that name here, give it as \.\/result\n$/,
    )
  })

  it('refuses --arg with a bad expression, naming the argument', () => {
    expect(oneLine(['hello', '--arg', 'zzz', 'nope'])).toBe(
      `nix2aci: --arg zzz "nope" is not a Nix expression: undefined variable 'nope'\n`,
    )
  })

  it('refuses a Nix spec whose fields have the wrong types, naming each field', () => {
    const spec = join(scratch.path, 'bad.nix')
    writeFileSync(
      spec,
      `let pkgs = import ${fixtures} { }; in
{ images = [
  { name = "x"; binary = 1; packages = [ pkgs.hello ]; }
  { name = "y"; binary = "hello"; packages = [ pkgs.hello 1 ]; }
  { name = "z"; binary = "hello"; packages = [ pkgs.hello ]; port = 5; }
  { name = "w"; binary = "hello"; packages = [ pkgs.hello ]; argstr = { a = 1; }; }
]; }
`,
    )
    const run = runCli(['build', spec, '--out-dir', join(scratch.path, 'spec-out'), '--quiet'])
    expect(run.status).toBe(1)
    expect(run.stderr).toBe(
      [
        `FAILED x: ${spec}: images[0].binary: required, a string`,
        `FAILED y: ${spec}: images[1].packages[1]: must be a package (a derivation) or a string, got int`,
        `FAILED z: ${spec}: images[2].port: must be a list of strings`,
        `FAILED w: ${spec}: images[3].argstr: must be an object of strings ({"NAME": "VALUE"})`,
        '',
      ].join('\n'),
    )
    writeFileSync(spec, '{ images = [ (1 +) ]; }\n')
    const syntax = runCli(['build', spec, '--quiet']).stderr.trimEnd().split('\n')
    expect(syntax[0]).toBe(`nix2aci: cannot evaluate ${spec}: syntax error, unexpected ')'`)
    expect(syntax[1]).toBe(`  at ${spec}:1:18:`)
  })
})
