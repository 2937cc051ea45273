// inspect, validate and run on real images: thin, fat, and broken ones.
import { execFileSync, spawn } from 'node:child_process'
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildJson, fixtureEnv, imageIdOf, listImage, makeTempDir, onPath, repoRoot, runCli } from './helpers/cli.js'
import { pollFor } from './helpers/wait.js'

const out = makeTempDir()
let thin: ReturnType<typeof buildJson>
let fat: ReturnType<typeof buildJson>
beforeAll(() => {
  thin = buildJson(['thin', 'hello-thin', 'hello', 'hello', '--out-dir', out.path, '--port', 'web:tcp:8080'])
  fat = buildJson(['fat', 'hello-fat', 'hello', 'hello', '--out-dir', out.path, '--compression', 'xz'])
})
afterAll(() => out.remove())

/** A copy of the thin image (and its .mounts) to break. */
function copyOfThin(name: string): string {
  const image = join(out.path, `${name}.aci`)
  copyFileSync(thin.image, image)
  copyFileSync(thin.mountsFile!, join(out.path, `${name}.mounts`))
  return image
}

describe('nix2aci inspect', () => {
  it('shows name, labels, exec, mounts, ports, size, compression and image ID', () => {
    const run = runCli(['inspect', thin.image, '--json'])
    expect(run.status).toBe(0)
    const summary = JSON.parse(run.stdout)
    expect(summary).toMatchObject({
      name: 'hello-thin',
      kind: 'thin',
      labels: { arch: 'amd64', os: 'linux' },
      exec: [expect.stringMatching(/-user-environment\/bin\/hello$/)],
      ports: [{ name: 'web', protocol: 'tcp', port: 8080 }],
      size: statSync(thin.image).size,
      compression: 'gzip',
      imageId: imageIdOf(thin.image, 'gzip -dc'),
    })
    const manifest = listImage(thin.image).manifest as { app: { mountPoints: unknown[] } }
    expect(summary.mounts).toHaveLength(manifest.app.mountPoints.length)
    const human = runCli(['inspect', thin.image])
    expect(human.stdout).toMatch(/name: +hello-thin/)
    expect(human.stdout).toContain(imageIdOf(thin.image, 'gzip -dc'))
  })

  it('reads a fat xz image', () => {
    const summary = JSON.parse(runCli(['inspect', fat.image, '--json']).stdout)
    expect(summary).toMatchObject({ kind: 'fat', compression: 'xz', imageId: imageIdOf(fat.image, 'xz -dc') })
  })

  it('says in one line when the decompressor is missing', () => {
    const run = runCli(['inspect', fat.image], { env: fixtureEnv({ PATH: '/nonexistent' }) })
    expect(run.status).toBe(1)
    expect(run.stderr.trim()).toMatch(/^nix2aci: .*not a readable ACI \(xz tar\): cannot run xz/)
  })

  it('says when a file is not an image', () => {
    const junk = join(out.path, 'junk.aci')
    writeFileSync(junk, 'not an image at all, just text that is long enough to not be a tar header')
    const run = runCli(['inspect', junk])
    expect(run.status).toBe(1)
    expect(run.stderr.trim()).toMatch(/^nix2aci: .*junk\.aci is not a readable ACI/)
  })
})

describe('nix2aci validate', () => {
  it('passes thin and fat images built here', () => {
    for (const image of [thin.image, fat.image]) {
      const run = runCli(['validate', image])
      expect(run.status, run.stdout).toBe(0)
      expect(run.stdout).toMatch(/: valid \(actool passed\)/)
    }
  })

  it('fails a truncated image', () => {
    const image = copyOfThin('truncated')
    truncateSync(image, 200)
    const run = runCli(['validate', image, '--json'])
    expect(run.status).toBe(1)
    expect(JSON.parse(run.stdout).problems.join('\n')).toMatch(/unexpected end of file/)
  })

  it('fails a file that is not gzip or tar', () => {
    const image = copyOfThin('random')
    writeFileSync(image, Buffer.alloc(4096, 7))
    const run = runCli(['validate', image])
    expect(run.status).toBe(1)
    expect(run.stdout).toMatch(/invalid\n.*not a readable ACI/)
  })

  it('fails an image with an extra top-level file', () => {
    const dir = makeTempDir()
    try {
      execFileSync('tar', ['-xzf', thin.image, '-C', dir.path])
      writeFileSync(join(dir.path, 'extra'), 'x')
      const image = copyOfThin('extra')
      execFileSync('tar', ['-czf', image, '-C', dir.path, 'manifest', 'rootfs', 'extra'])
      const run = runCli(['validate', image])
      expect(run.status).toBe(1)
      expect(run.stdout).toMatch(/unexpected top-level entries.*: extra/)
    } finally {
      dir.remove()
    }
  })

  it('lists the mount sources this host lacks', () => {
    const image = copyOfThin('missing')
    const mounts = join(out.path, 'missing.mounts')
    const gone = '/nix/store/00000000000000000000000000000000-gone'
    writeFileSync(
      mounts,
      `${readFileSync(mounts, 'utf8').trim()} --volume=gone,kind=host,source=${gone},readOnly=true\n`,
    )
    const run = runCli(['validate', image, '--json'])
    expect(run.status).toBe(1)
    expect(JSON.parse(run.stdout).missingMountSources).toEqual([gone])
    const human = runCli(['validate', image])
    expect(human.stdout).toContain(`missing: ${gone}`)
  })

  it('says when there is no such file', () => {
    rmSync(join(out.path, 'nothing.aci'), { force: true })
    const run = runCli(['validate', join(out.path, 'nothing.aci')])
    expect(run.status).toBe(1)
    expect(run.stdout).toMatch(/no such image/)
  })
})

describe('nix2aci run', () => {
  it('--dry-run prints the exact rkt command line with the image volumes', () => {
    const run = runCli(['run', thin.image, '--dry-run', '--', 'an arg'])
    expect(run.status).toBe(0)
    const volumes = readFileSync(thin.mountsFile!, 'utf8').trim()
    expect(run.stdout.trim()).toBe(`rkt run --insecure-options=image ${volumes} ${thin.image} -- 'an arg'`)
  })

  // rkt is in no registry here: a stand-in on PATH records how it was called and when it was stopped.
  const standIn = join(out.path, 'stand-in-bin')
  const rktLog = join(out.path, 'rkt.log')
  const standInEnv = (exitCode: string) =>
    fixtureEnv({ PATH: `${standIn}:${process.env.PATH}`, RKT_LOG: rktLog, RKT_EXIT: exitCode })
  beforeAll(() => {
    mkdirSync(standIn)
    const script = [
      '#!/bin/sh',
      'printf "%s\\n" "$@" > "$RKT_LOG"',
      '[ -n "$RKT_EXIT" ] && exit "$RKT_EXIT"',
      'trap \'echo stopped >> "$RKT_LOG"; exit 0\' TERM',
      'echo running >> "$RKT_LOG"',
      'i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done', // 30 s at most, should a test fail
    ]
    writeFileSync(join(standIn, 'rkt'), `${script.join('\n')}\n`)
    chmodSync(join(standIn, 'rkt'), 0o755)
  })

  it("runs rkt with the image's volumes and exits with rkt's status", () => {
    const run = runCli(['run', thin.image, '--', 'an arg'], { env: standInEnv('3') })
    expect(run.status).toBe(3)
    const volumes = readFileSync(thin.mountsFile!, 'utf8').trim().split(' ')
    expect(readFileSync(rktLog, 'utf8').trim().split('\n')).toEqual([
      'run',
      '--insecure-options=image',
      ...volumes,
      thin.image,
      '--',
      'an arg',
    ])
  })

  it('stops rkt when it is stopped itself', async () => {
    writeFileSync(rktLog, '')
    const child = spawn(process.execPath, [join(repoRoot, 'dist/bin/nix2aci.js'), 'run', thin.image], {
      env: standInEnv(''),
      stdio: 'ignore',
    })
    try {
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
      await pollFor('the rkt stand-in not running', 20_000, () =>
        readFileSync(rktLog, 'utf8').includes('running') ? true : undefined,
      )
      child.kill('SIGTERM')
      expect(await exited).toBe(143)
      expect(readFileSync(rktLog, 'utf8')).toMatch(/running\nstopped\n$/)
    } finally {
      // A failed expectation must not leave nix2aci (and its rkt stand-in) running.
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
  })

  it("passes rkt's own options through: global ones before run, run ones before the image, per-app ones after it", () => {
    const run = runCli([
      'run',
      '--dir=/tmp/rkt-ci',
      '--net=host',
      '--debug',
      '--stage1-path=/opt/stage1.aci',
      thin.image,
      '--exec=/bin/sh',
      '--dry-run',
      '--',
      '-c',
      'exit 7',
    ])
    expect(run.status, run.stderr).toBe(0)
    const volumes = readFileSync(thin.mountsFile!, 'utf8').trim()
    expect(run.stdout.trim()).toBe(
      `rkt --dir=/tmp/rkt-ci --debug run --insecure-options=image --net=host --stage1-path=/opt/stage1.aci ${volumes} ${thin.image} --exec=/bin/sh -- -c 'exit 7'`,
    )
  })

  it("lets the user's --volume and --insecure-options replace nix2aci's own", () => {
    const glibc = /--volume=([^,]*glibc[^,]*),/.exec(readFileSync(thin.mountsFile!, 'utf8'))![1]!
    const mine = `--volume=${glibc},kind=host,source=/srv/glibc`
    const run = runCli(['run', '--insecure-options=image,ondisk', mine, thin.image, '--dry-run'])
    expect(run.status, run.stderr).toBe(0)
    const words = run.stdout.trim().split(' ')
    expect(words.slice(0, 3)).toEqual(['rkt', '--insecure-options=image,ondisk', 'run'])
    expect(words.filter((word) => word.startsWith(`--volume=${glibc},`))).toEqual([mine])
    expect(words.filter((word) => word.startsWith('--insecure-options'))).toHaveLength(1)
  })

  it('refuses an rkt option whose value is not after =, in one line', () => {
    const run = runCli(['run', '--dir', '/tmp/rkt-ci', thin.image, '--dry-run'])
    expect(run.status).toBe(1)
    expect(run.stderr).toBe(
      `nix2aci: run takes one image, and rkt's options their value after '=' (--dir=/var/lib/rkt): /tmp/rkt-ci and ${thin.image} cannot both be the image\n`,
    )
  })

  it('refuses up front, in one line, an image whose mount sources this host lacks', () => {
    writeFileSync(rktLog, 'not called')
    const image = copyOfThin('run-missing')
    const gone = '/nix/store/00000000000000000000000000000000-gone'
    writeFileSync(join(out.path, 'run-missing.mounts'), `--volume=gone,kind=host,source=${gone},readOnly=true\n`)
    const run = runCli(['run', image], { env: standInEnv('0') })
    expect(run.status).toBe(1)
    expect(run.stderr).toBe(
      `nix2aci: cannot run ${image}: 1 mount sources missing on this host: ${gone} (nix2aci validate lists them)\n`,
    )
    expect(readFileSync(rktLog, 'utf8')).toBe('not called')
  })

  it.skipIf(onPath('rkt'))('says clearly that rkt is not installed', () => {
    const run = runCli(['run', thin.image])
    expect(run.status).toBe(1)
    expect(run.stderr.trim()).toBe(
      'nix2aci: rkt is not installed (not on PATH); --dry-run prints the command line it would run',
    )
  })
})
