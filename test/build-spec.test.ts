// nix2aci build: a spec with the README's examples and one bad entry.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runAci } from './harness/run-aci.js'
import { actoolValidate, fixtureEnv, fixtures, makeTempDir, runCli, writeShellPackage } from './helpers/cli.js'

const dir = makeTempDir()
afterAll(() => dir.remove())

describe('nix2aci build', () => {
  it("shows a failed Nix build's last log lines under its FAILED line, and in --json", () => {
    const broken = writeShellPackage(dir.path, 'broken', `broken-${Date.now()}`, 'echo "compiling it"; exit 3')
    const spec = join(dir.path, 'broken-spec.json')
    writeFileSync(
      spec,
      JSON.stringify({
        outDir: 'broken-out',
        images: [{ name: 'b', binary: 'x', packages: ['broken'], file: broken }],
      }),
    )
    const plain = runCli(['build', spec])
    expect(plain.status).toBe(1)
    const lines = plain.stderr.trim().split('\n')
    const failed = lines.findIndex((line) => line.startsWith('FAILED b: '))
    expect(lines[failed]).toMatch(/failed with exit code 3$/)
    expect(lines.slice(failed + 1)).toContain('  > compiling it')
    const json = runCli(['build', spec, '--json'])
    const [image] = JSON.parse(json.stdout).images
    expect(image).toMatchObject({ name: 'b', ok: false })
    expect(image.details).toContain('> compiling it')
  })

  it('builds every good image, reports the bad one, and exits non-zero', async () => {
    const spec = join(dir.path, 'nix2aci.json')
    writeFileSync(
      spec,
      JSON.stringify({
        file: fixtures,
        outDir: 'out',
        images: [
          { name: 'go1.5-etcd-v2.1.2', binary: 'etcd', packages: ['etcd'] },
          { name: 'bbpython35', binary: 'sh', packages: ['busybox', 'python35'] },
          { name: 'hello-fat', kind: 'fat', binary: 'hello', packages: ['hello'], env: ['GREETING=hi'] },
          { name: 'broken', binary: 'hello', packages: ['hello'], port: ['web:tcp:0'] },
        ],
      }),
    )
    const run = runCli(['build', '-c', spec, '--json'])
    expect(run.status).toBe(1)
    const report = JSON.parse(run.stdout)
    expect(report).toMatchObject({ built: 3, failed: 1 })
    expect(report.images.map((i: { name: string; ok: boolean }) => [i.name, i.ok])).toEqual([
      ['go1.5-etcd-v2.1.2', true],
      ['bbpython35', true],
      ['hello-fat', true],
      ['broken', false],
    ])
    expect(report.images[3].error).toMatch(/images\[3\]: --port 'web:tcp:0': port must be in 1-65535 range/)
    for (const image of report.images.slice(0, 3)) {
      expect(image.result.image.startsWith(join(dir.path, 'out'))).toBe(true)
      expect(actoolValidate(image.result.image).status).toBe(0)
    }
    const python = report.images[1].result
    const run35 = await runAci(python.image, {
      mounts: python.mountsFile,
      args: ['-c', 'python3 -c "import json; print(json.dumps([1]))"'],
    })
    expect(run35.stdout.trim()).toBe('[1]')
  })

  it('evaluates the Nix expression once for all the images that read it', () => {
    // A nix-instantiate in front of the real one, that notes each call: a spy, not a mock.
    const bin = join(dir.path, 'bin')
    const calls = join(dir.path, 'instantiate-calls')
    mkdirSync(bin)
    const real = execFileSync('sh', ['-c', 'command -v nix-instantiate'], { encoding: 'utf8' }).trim()
    writeFileSync(join(bin, 'nix-instantiate'), `#!/bin/sh\necho "$*" >> ${calls}\nexec ${real} "$@"\n`, {
      mode: 0o755,
    })
    const spec = join(dir.path, 'shared.json')
    writeFileSync(
      spec,
      JSON.stringify({
        file: fixtures,
        images: ['etcd', 'hello', 'busybox'].map((p) => ({
          name: `shared-${p}`,
          binary: p === 'busybox' ? 'sh' : p,
          packages: [p],
        })),
      }),
    )
    const run = runCli(['build', '-c', spec, '--out-dir', join(dir.path, 'shared'), '--json'], {
      env: fixtureEnv({ PATH: `${bin}:${process.env.PATH}` }),
    })
    expect(JSON.parse(run.stdout)).toMatchObject({ built: 3, failed: 0 })
    const lines = readFileSync(calls, 'utf8').trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/-A etcd -A hello -A busybox/)
  })

  it('leaves no output directory behind when every image fails, though they build side by side', () => {
    const out = join(dir.path, 'all-fail', 'out')
    const spec = join(dir.path, 'all-fail.json')
    const images = ['etcd', 'hello', 'busybox'].map((p) => ({ name: `no-${p}`, binary: 'nope', packages: [p] }))
    writeFileSync(spec, JSON.stringify({ file: fixtures, outDir: out, images }))
    const run = runCli(['build', '-c', spec, '--json'])
    expect(run.status).toBe(1)
    expect(JSON.parse(run.stdout)).toMatchObject({ built: 0, failed: 3 })
    expect(existsSync(join(dir.path, 'all-fail'))).toBe(false)
  })

  it('reports each failure on stderr, in text, under --quiet and under --json alike', () => {
    const spec = join(dir.path, 'mixed.json')
    const out = join(dir.path, 'mixed')
    const good = { name: 'mixed-good', binary: 'hello', packages: ['hello'] }
    const bad = { name: 'mixed-bad', binary: 'nope', packages: ['hello'] }
    writeFileSync(spec, JSON.stringify({ file: fixtures, outDir: out, images: [good, bad] }))
    // Progress goes to stderr too, a line a step when not on a terminal.
    const failure = /^FAILED mixed-bad: binary 'nope' is not in the packages.*$/m

    const text = runCli(['build', '-c', spec])
    expect(text.status).toBe(1)
    expect(text.stdout).toMatch(/^ok {5}mixed-good: .*mixed-good\.aci \(thin, .*\)\n1 built, 1 failed\n$/)
    expect(text.stderr).toMatch(failure)

    const json = runCli(['build', '-c', spec, '--json'])
    expect(json.status).toBe(1)
    expect(JSON.parse(json.stdout).images.map((image: { ok: boolean }) => image.ok)).toEqual([true, false])
    expect(json.stderr).toMatch(failure)

    writeFileSync(spec, JSON.stringify({ file: fixtures, outDir: out, images: [bad] }))
    const quiet = runCli(['build', '-c', spec, '-q'])
    expect(quiet.status).toBe(1)
    expect(quiet.stdout).toBe('')
    expect(quiet.stderr).toMatch(/^FAILED mixed-bad: binary 'nope' is not in the packages.*\n$/)
  })

  it('refuses a spec that is not JSON or has no images list, in one line', () => {
    const bad = join(dir.path, 'bad.json')
    writeFileSync(bad, '{"image": []}')
    const run = runCli(['build', '-c', bad])
    expect(run.status).toBe(1)
    expect(run.stderr.trim()).toMatch(/^nix2aci: .*bad\.json: expected \{"images": \[ ... \]\}/)
    writeFileSync(bad, '{not json')
    expect(runCli(['build', '-c', bad]).stderr).toMatch(/is not JSON/)
    // The spec file is also the command's argument, as `nix2aci build images.nix` takes it.
    expect(runCli(['build', bad]).stderr).toMatch(/^nix2aci: .*bad\.json is not JSON/)
  })

  it('refuses a second image of the same name, which would overwrite the first', () => {
    const spec = join(dir.path, 'twice.json')
    const image = { name: 'twice', binary: 'hello', packages: ['hello'] }
    writeFileSync(spec, JSON.stringify({ file: fixtures, images: [image, image] }))
    const report = JSON.parse(runCli(['build', '-c', spec, '--out-dir', join(dir.path, 'twice'), '--json']).stdout)
    expect(report).toMatchObject({ built: 1, failed: 1 })
    expect(report.images[1].error).toMatch(/images\[1\]\.name: images\[0\] already writes twice\.aci/)
  })

  it('names the bad field of an entry', () => {
    const spec = join(dir.path, 'fields.json')
    writeFileSync(spec, JSON.stringify({ images: [{ name: 'x', binary: 'hello', packages: 'hello', colour: 1 }] }))
    const run = runCli(['build', '-c', spec, '--json'])
    expect(JSON.parse(run.stdout).images[0].error).toMatch(/images\[0\]: unknown field 'colour'/)
  })

  it('refuses a signing key for an entry that does not sign', () => {
    const spec = join(dir.path, 'key.json')
    writeFileSync(spec, JSON.stringify({ images: [{ name: 'x', binary: 'hello', packages: ['hello'], key: 'k' }] }))
    const run = runCli(['build', '-c', spec, '--json'])
    expect(run.status).toBe(1)
    expect(JSON.parse(run.stdout).images[0].error).toMatch(/images\[0\]\.key: needs "sign": true/)
  })
})
