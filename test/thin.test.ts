// Thin images end to end: built from the fixture set by the real CLI, checked by actool, and run
// with nothing but their .mounts file under the run harness.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runAci } from './harness/run-aci.js'
import { closureOf, nixBuild } from './helpers/closure.js'
import { etcdVersionFromImage } from './helpers/etcd.js'
import { actoolValidate, buildJson, fixtures, imageIdOf, makeTempDir, runCli } from './helpers/cli.js'

const out = makeTempDir()
afterAll(() => out.remove())

const thin = (name: string, binary: string, ...packages: string[]) =>
  buildJson(['thin', name, binary, ...packages, '--out-dir', out.path, '--engine', 'native'])

describe('nix2aci thin', () => {
  it('builds an etcd image that actool accepts and that runs from its .mounts file', async () => {
    const result = thin('etcd', 'etcd', 'etcd')
    expect(result.image).toBe(join(out.path, 'etcd.aci'))
    expect(actoolValidate(result.image).status).toBe(0)

    expect(result.imageId).toBe(imageIdOf(result.image))

    const closure = closureOf(result.profile!)
    const volumes = readFileSync(result.mountsFile!, 'utf8').trim().split(' ')
    expect(volumes).toHaveLength(closure.length + 1)
    for (const path of closure) expect(volumes).toContainEqual(expect.stringContaining(`,source=${path},readOnly=true`))
    expect(result.mounts).toBe(closure.length + 1)

    const run = await runAci(result.image, { mounts: result.mountsFile!, args: ['--version'] })
    expect(run.stdout).toMatch(/etcd Version: 3\./)
    expect(run.status).toBe(0)
  })

  it('starts etcd, which answers GET /version on loopback', async () => {
    const result = thin('etcd-server', 'etcd', 'etcd')
    await expect(etcdVersionFromImage(result.image, result.mountsFile!)).resolves.toMatchObject({
      etcdserver: expect.stringMatching(/^3\./),
    })
  })

  it('runs python3 from busybox sh in a two-package image', async () => {
    const result = thin('bbpython3', 'sh', 'busybox', 'python3')
    const run = await runAci(result.image, {
      mounts: result.mountsFile!,
      args: ['-c', 'python3 -c "import json; print(json.dumps([1]))"'],
    })
    expect(run.stdout.trim()).toBe('[1]')
  })

  it('runs hello, exec found by package name as nix-env -qa prints it', async () => {
    const result = thin('hello', 'hello', 'hello-1.0')
    const run = await runAci(result.image, { mounts: result.mountsFile! })
    expect(run.stdout.trim()).toBe('Hello, world!')
  })

  it('takes a store path, and a nested attribute path like nixos.etcd, as packages', async () => {
    const [hello] = nixBuild(['hello'])
    const fromPath = thin('hello-path', 'hello', hello!)
    expect((await runAci(fromPath.image, { mounts: fromPath.mountsFile! })).stdout.trim()).toBe('Hello, world!')

    const channel = join(out.path, 'channel.nix')
    writeFileSync(channel, `{ nixos = import ${fixtures} {}; }`)
    const nested = buildJson(['thin', 'nested', 'etcd', 'nixos.etcd', '-f', channel, '--out-dir', out.path])
    expect((await runAci(nested.image, { mounts: nested.mountsFile!, args: ['--version'] })).stdout).toMatch(
      /etcd Version: 3\./,
    )
  })

  it('keeps the closure alive through nix-store --gc', () => {
    const result = thin('gc-kept', 'hello', 'hello')
    execFileSync('nix-store', ['--gc'], { stdio: 'ignore' })
    const sources = readFileSync(result.mountsFile!, 'utf8')
      .trim()
      .split(' ')
      .map((volume) => /source=([^,]+)/.exec(volume)![1]!)
    expect(sources.length).toBeGreaterThan(2)
    for (const source of sources) expect(existsSync(source), source).toBe(true)
  })

  it('prints a summary with the image ID and the rkt command line', () => {
    const run = runCli(['thin', 'hello-summary', 'hello', 'hello', '--out-dir', out.path])
    expect(run.status).toBe(0)
    expect(run.stdout).toMatch(/image ID: +sha512-[0-9a-f]{128}/)
    expect(run.stdout).toContain('sudo rkt run --insecure-options=image $(cat ')
  })
})
