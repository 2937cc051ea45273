// nix2aci run and validate against the real rkt (1.30, fly stage1), when it is on PATH: the
// options a CI job passes reach it, the app's exit code comes back, and validate agrees with rkt
// about volumes. Skipped where rkt (and its stage1-fly.aci beside it) is not installed.
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildJson, makeTempDir, runCli } from './helpers/cli.js'
import { removeRktDir } from './helpers/rkt.js'

const rkt = spawnSync('sh', ['-c', 'command -v rkt'], { encoding: 'utf8' }).stdout.trim()
const stage1 = rkt ? join(dirname(rkt), 'stage1-fly.aci') : ''
const runnable = rkt !== '' && existsSync(stage1) && process.getuid?.() === 0

describe.skipIf(!runnable)('with the real rkt (on PATH, stage1-fly.aci beside it, as root)', () => {
  const out = makeTempDir()
  const rktDir = makeTempDir('nix2aci-rkt-')
  const rktOptions = [`--dir=${rktDir.path}`, `--stage1-path=${stage1}`]
  let busybox: ReturnType<typeof buildJson>
  let configured: ReturnType<typeof buildJson>
  beforeAll(() => {
    busybox = buildJson(['thin', 'bb', 'sh', 'busybox', '--out-dir', out.path])
    configured = buildJson([
      ...['thin', 'bb-config', 'sh', 'busybox', '--out-dir', out.path],
      ...['--mount', 'config:/etc/conf:ro', '--exec', 'sh -c "ls /etc/conf"'],
    ])
  })
  afterAll(() => {
    out.remove()
    removeRktDir(rktDir.path, rkt)
  })

  it("runs the app with rkt's options and passes its exit code through", () => {
    const ok = runCli(['run', ...rktOptions, busybox.image, '--', '-c', 'echo hello from rkt'])
    expect(ok.status, ok.stderr).toBe(0)
    expect(ok.stdout).toContain('hello from rkt')
    const failing = runCli(['run', ...rktOptions, busybox.image, '--', '-c', 'exit 7'])
    expect(failing.status, failing.stderr).toBe(7)
  })

  it('agrees with validate: a mount point without a volume is what rkt refuses, and filling it is enough', () => {
    const validate = runCli(['validate', configured.image])
    expect(validate.stdout).toContain('--volume=config,kind=host,source=HOST_PATH')
    const refused = runCli(['run', ...rktOptions, configured.image])
    expect(refused.status).toBe(254)
    expect(refused.stderr).toContain('missing volume for mountpoint "config"')
    const filled = runCli(['run', ...rktOptions, `--volume=config,kind=host,source=${out.path}`, configured.image])
    expect(filled.status, filled.stderr).toBe(0)
    expect(filled.stdout).toContain('bb-config.aci')
  })

  it('agrees with validate: a thin image without its .mounts file does not run', () => {
    const copy = join(out.path, 'bare.aci')
    copyFileSync(busybox.image, copy)
    expect(runCli(['validate', copy]).status).toBe(1)
    const refused = runCli(['run', ...rktOptions, copy, '--', '-c', 'true'])
    expect(refused.status).toBe(254)
    expect(refused.stderr).toMatch(/missing volume for mountpoint/)
    expect(readFileSync(busybox.mountsFile!, 'utf8')).toMatch(/^--volume=/)
  })
})
