// A thin closure whose .mounts no longer fits on a command line: the build warns, and `nix2aci run`
// passes the volumes in a pod manifest. Linux allows a quarter of the stack limit for arguments and
// environment (2 MiB by default, about 11,000 store paths); under `ulimit -s 512` the kernel's floor,
// 128 KiB, applies and 800 synthetic paths are past it: the same limit and the same E2BIG, for real,
// at a size that builds in seconds.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fixtureEnv, fixtures, makeTempDir, repoRoot, type CliRun } from './helpers/cli.js'
import { removeRktDir } from './helpers/rkt.js'

const PATHS = 800
const SMALL_STACK_KIB = 512

const out = makeTempDir()
const nixFile = join(out.path, 'big.nix')
const image = join(out.path, 'big.aci')
const mountsFile = join(out.path, 'big.mounts')

/** The CLI under a shell that first lowers the stack limit, so execve's limit is 128 KiB. */
function runSmallStack(args: string[], env = fixtureEnv()): CliRun {
  const quote = (word: string) => `'${word.replaceAll("'", "'\\''")}'`
  const command = [process.execPath, join(repoRoot, 'dist/bin/nix2aci.js'), ...args].map(quote).join(' ')
  const result = spawnSync('sh', ['-c', `ulimit -s ${SMALL_STACK_KIB} && exec ${command}`], {
    env,
    encoding: 'utf8',
    timeout: 150_000,
  })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

const buildArgs = ['thin', 'big', 'synthetic', 'big', 'busybox', '-f', nixFile, '--out-dir', out.path, '--json']
let built: CliRun
beforeAll(() => {
  writeFileSync(
    nixFile,
    `{ big = import ${join(fixtures, 'synthetic.nix')} { paths = ${PATHS}; shape = "tree"; }; busybox = (import ${fixtures} {}).busybox; }\n`,
  )
  built = runSmallStack(buildArgs)
  if (built.status !== 0) throw new Error(`build failed (${built.status}): ${built.stderr}`)
})
afterAll(() => {
  // Never delete under a mount rkt's fly stage1 may have left (see the real rkt test).
  const mounted = spawnSync('findmnt', ['-rn', '-o', 'TARGET'], { encoding: 'utf8' }).stdout
  if (!mounted.includes(out.path)) out.remove()
})

describe(`a .mounts file longer than a command line (${PATHS} paths, ulimit -s ${SMALL_STACK_KIB})`, () => {
  it('is what execve refuses: `$(cat NAME.mounts)` fails with "Argument list too long"', () => {
    const shell = spawnSync('sh', ['-c', `ulimit -s ${SMALL_STACK_KIB} && /bin/true $(cat '${mountsFile}')`], {
      encoding: 'utf8',
    })
    expect(shell.status).not.toBe(0)
    expect(shell.stderr).toMatch(/Argument list too long/)
  })

  it('gets a warning at build time, on stderr, and none where the default stack limit leaves room', () => {
    expect(built.stderr).toMatch(
      /^warning: the \d+ volumes of .*big\.mounts take \d+ bytes with the environment, more than a command line holds here \(131072 bytes\): .*nix2aci run passes them to rkt in a pod manifest instead$/m,
    )
    expect(JSON.parse(built.stdout).warnings).toHaveLength(1)
    const roomy = spawnSync(process.execPath, [join(repoRoot, 'dist/bin/nix2aci.js'), ...buildArgs], {
      env: fixtureEnv(),
      encoding: 'utf8',
    })
    expect(roomy.status, roomy.stderr).toBe(0)
    expect(roomy.stderr).not.toMatch(/warning/)
    expect(JSON.parse(roomy.stdout).warnings).toEqual([])
  })

  it('runs through nix2aci run, which hands rkt the volumes in a pod manifest', () => {
    const bin = join(out.path, 'stand-in-bin')
    mkdirSync(bin)
    const log = join(out.path, 'rkt.log')
    const pod = join(out.path, 'pod.json')
    writeFileSync(
      join(bin, 'rkt'),
      [
        '#!/bin/sh',
        'case " $* " in *" fetch "*) echo "$*" > "$RKT_LOG.fetch"; echo sha512-0123456789abcdef; exit 0;; esac',
        'for arg; do case "$arg" in --pod-manifest=*) cp "${arg#--pod-manifest=}" "$POD_COPY";; esac; done',
        'printf "%s\\n" "$@" > "$RKT_LOG"',
        'exit 5',
      ].join('\n') + '\n',
    )
    chmodSync(join(bin, 'rkt'), 0o755)
    const tmp = join(out.path, 'tmp')
    mkdirSync(tmp)
    const env = fixtureEnv({ PATH: `${bin}:${process.env.PATH}`, RKT_LOG: log, POD_COPY: pod, TMPDIR: tmp })
    const run = runSmallStack(['run', '--dir=/tmp/rkt-ci', '--net=host', image, '--', 'an arg'], env)
    expect(run.status, run.stderr).toBe(5)
    expect(readFileSync(`${log}.fetch`, 'utf8')).toBe(`--dir=/tmp/rkt-ci fetch --insecure-options=image ${image}\n`)
    const args = readFileSync(log, 'utf8').trim().split('\n')
    expect(args).toEqual([
      '--dir=/tmp/rkt-ci',
      'run',
      '--insecure-options=image',
      '--net=host',
      expect.stringMatching(/^--pod-manifest=/),
    ])
    const manifest = JSON.parse(readFileSync(pod, 'utf8'))
    const volumes = readFileSync(mountsFile, 'utf8').trim().split(' ')
    expect(manifest.volumes).toHaveLength(volumes.length)
    expect(manifest.volumes[0]).toMatchObject({ kind: 'host', readOnly: true })
    expect(manifest.apps).toEqual([
      {
        name: 'big',
        image: { id: 'sha512-0123456789abcdef', name: 'big' },
        app: expect.objectContaining({ exec: [expect.stringMatching(/bin\/synthetic$/), 'an arg'] }),
      },
    ])
    // The pod manifest is gone once rkt is.
    expect(readdirSync(tmp)).toEqual([])
  })

  const rkt = spawnSync('sh', ['-c', 'command -v rkt'], { encoding: 'utf8' }).stdout.trim()
  const stage1 = rkt ? join(dirname(rkt), 'stage1-fly.aci') : ''
  const runnable = rkt !== '' && existsSync(stage1) && process.getuid?.() === 0
  it.skipIf(!runnable)('runs with the real rkt (on PATH, stage1-fly.aci beside it, as root)', () => {
    const rktDir = join(out.path, 'rkt')
    try {
      const run = runSmallStack(['run', `--dir=${rktDir}`, `--stage1-path=${stage1}`, image])
      expect(run.status, run.stderr).toBe(0)
      expect(run.stdout).toContain(`synthetic-${PATHS}: synthetic store path`)
    } finally {
      removeRktDir(rktDir, rkt)
    }
  })
})
