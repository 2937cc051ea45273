// Fat images: the closure inside, runnable with no host store, reproducible to the byte.
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runAci } from './harness/run-aci.js'
import { etcdVersionFromImage } from './helpers/etcd.js'
import { closureOf } from './helpers/closure.js'
import {
  actoolValidate,
  buildJson,
  fixtureEnv,
  imageIdOf,
  listImage,
  makeTempDir,
  mountTmpfs,
  pathWithout,
  runCli,
  snapshotDir,
  writeShellPackage,
} from './helpers/cli.js'

const out = makeTempDir()
afterAll(() => out.remove())

const fat = (
  name: string,
  binary: string,
  packages: string[],
  extra: string[] = [],
  outDir = out.path,
  env = fixtureEnv(),
) => buildJson(['fat', name, binary, ...packages, '--out-dir', outDir, '--engine', 'native', ...extra], { env })

describe('nix2aci fat', () => {
  it('runs etcd with no host mounts but resolv.conf, answering GET /version', async () => {
    const result = fat('etcd-fat', 'etcd', ['etcd'])
    expect(actoolValidate(result.image).status).toBe(0)
    expect(result.profile).toBeNull()
    expect(readFileSync(result.mountsFile!, 'utf8').trim()).toBe(
      '--volume=resolv-conf,kind=host,source=/etc/resolv.conf,readOnly=true',
    )
    await expect(etcdVersionFromImage(result.image, result.mountsFile!)).resolves.toMatchObject({
      etcdserver: expect.stringMatching(/^3\./),
    })
  })

  it('runs python3 and busybox sh from the image alone', async () => {
    const result = fat('bbpython-fat', 'sh', ['busybox', 'python3'], ['--no-resolv-conf'])
    expect(result.mountsFile).toBeNull()
    expect(actoolValidate(result.image).status).toBe(0)
    const run = await runAci(result.image, {
      args: ['-c', 'echo from-sh; python3 -c "import json; print(json.dumps([1]))"; cat /etc/hosts'],
    })
    expect(run.stdout).toMatch(/^from-sh\n\[1\]\n127\.0\.0\.1\tlocalhost/)
  })

  it('holds exactly the closure: every file of every path, nothing else from the host', () => {
    const result = fat('hello-exact', 'hello', ['hello'], ['--no-resolv-conf'])
    const { entries } = listImage(result.image)
    const names = entries.map((entry) => /rootfs(\/\S*)?/.exec(entry)![0].replace(/\/$/, ''))
    const userEnvironment = /"exec":\["(\/nix\/store\/[^/]+)/.exec(
      JSON.stringify(listImage(result.image).manifest),
    )![1]!
    const expected = closureOf(userEnvironment).flatMap((path) =>
      execFileSync('find', [path], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .map((p) => `rootfs${p}`),
    )
    const storeEntries = names.filter((name) => name.startsWith('rootfs/nix/store/'))
    expect(storeEntries.sort()).toEqual(expected.sort())
    const others = names.filter((name) => !name.startsWith('rootfs/nix/store/')).sort()
    expect(others).toEqual(['rootfs', 'rootfs/bin', 'rootfs/etc', 'rootfs/etc/hosts', 'rootfs/nix', 'rootfs/nix/store'])
  })

  it('gives a byte-identical image for the same inputs', () => {
    const again = makeTempDir()
    try {
      const first = fat('python-repro', 'python3', ['python3'])
      const second = fat('python-repro', 'python3', ['python3'], [], again.path)
      expect(second.imageId).toBe(first.imageId)
      expect(readFileSync(second.image).equals(readFileSync(first.image))).toBe(true)
    } finally {
      again.remove()
    }
  })

  it('stores hardlinked files once, as tar hard links', () => {
    const dir = makeTempDir()
    try {
      const file = writeShellPackage(
        dir.path,
        'linked',
        'linked-1.0',
        "mkdir -p $out/bin && printf '#!/bin/sh\\necho hi\\n' > $out/bin/linked && chmod +x $out/bin/linked && ln $out/bin/linked $out/bin/linked2",
      )
      const result = fat('linked', 'linked', ['linked'], ['-f', file, '--no-resolv-conf'])
      const listing = execFileSync('tar', ['-tvf', result.image], { encoding: 'utf8' })
      expect(listing).toMatch(/bin\/linked2 link to rootfs\/nix\/store\/[^/]+-linked-1\.0\/bin\/linked\n/)
      expect(actoolValidate(result.image).status).toBe(0)
    } finally {
      dir.remove()
    }
  })

  it('without pigz, writes gzip with node zlib that gzip and actool read, the same bytes every time', () => {
    const dir = makeTempDir()
    try {
      // python3's closure spans many of the compressor's blocks, compressed side by side.
      const env = fixtureEnv({ PATH: pathWithout('pigz', dir.path) })
      const first = fat('python-zlib', 'python3', ['python3'], [], join(dir.path, 'first'), env)
      const second = fat('python-zlib', 'python3', ['python3'], [], join(dir.path, 'second'), env)
      expect(actoolValidate(first.image).status).toBe(0)
      // gzip -t checks the trailer's CRC and length too, which actool does not read.
      expect(spawnSync('gzip', ['-t', first.image]).status).toBe(0)
      expect(first.imageId).toBe(imageIdOf(first.image))
      expect(readFileSync(second.image).equals(readFileSync(first.image))).toBe(true)
    } finally {
      dir.remove()
    }
  })

  for (const [compression, decompress] of [
    ['xz', 'xz -dc'],
    ['bzip2', 'bzip2 -dc'],
    ['none', 'cat'],
  ] as const) {
    it(`writes ${compression} images that actool accepts, with the image ID of the plain tar`, () => {
      const result = fat(`hello-${compression}`, 'hello', ['hello'], ['--compression', compression])
      expect(actoolValidate(result.image).status).toBe(0)
      expect(result.imageId).toBe(imageIdOf(result.image, decompress))
    })
  }

  it('running out of disk space leaves no partial image and the earlier one intact', (context) => {
    const dir = makeTempDir()
    const small = join(dir.path, 'small')
    mkdirSync(small)
    const helloSize = statSync(fat('hello-size', 'hello', ['hello'], ['--no-resolv-conf']).image).size
    const size = helloSize + 512 * 1024
    const mounted = mountTmpfs(small, `size=${size}`)
    if (!mounted) {
      dir.remove()
      return context.skip('cannot mount a tmpfs here (needs root): no small file system to fill')
    }
    try {
      fat('app', 'hello', ['hello'], ['--no-resolv-conf'], small)
      const before = snapshotDir(small)
      const run = runCli(['fat', 'app', 'python3', 'python3', '--out-dir', small, '--engine', 'native', '--quiet'])
      expect(run.status).not.toBe(0)
      expect(run.stderr.trim().split('\n')).toHaveLength(1)
      expect(run.stderr).toMatch(/ENOSPC|no space/i)
      expect(snapshotDir(small)).toEqual(before)
    } finally {
      execFileSync('umount', [small])
      dir.remove()
    }
  })

  it('is also reachable as buildFatACI', () => {
    const run = runCli(['legacy-fat', 'hello', 'hello', '--out-dir', out.path, '--json'], { bin: 'buildFatACI' })
    expect(run.status).toBe(0)
    expect(JSON.parse(run.stdout)).toMatchObject({ kind: 'fat', mounts: 1 })
  })
})
