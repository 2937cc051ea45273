// validate as rkt would judge an image: a volume for every mount point, a .mounts file that matches,
// the signature beside it, entries that stay inside it; inspect and validate on bad input.
import { execFileSync } from 'node:child_process'
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildJson, fixtureEnv, makeTempDir, pathWithout, runCli } from './helpers/cli.js'
import { makeThrowawayKey } from './helpers/gpg.js'

const out = makeTempDir()
const scratch = makeTempDir()
let thin: ReturnType<typeof buildJson>
let withMounts: ReturnType<typeof buildJson>
beforeAll(() => {
  thin = buildJson(['thin', 'hello-thin', 'hello', 'hello', '--out-dir', out.path])
  // As the README's manifest-options example: one mount point with a volume, one without.
  withMounts = buildJson([
    'thin',
    'etcd-node',
    'etcd',
    'etcd',
    '--out-dir',
    out.path,
    '--mount',
    'data:/var/lib/etcd',
    '--volume',
    'data=/tmp',
    '--mount',
    'config:/etc/etcd:ro',
  ])
})
afterAll(() => {
  out.remove()
  scratch.remove()
})

/** A copy of an image, with its .mounts file unless told otherwise. */
function copyOf(image: { image: string; mountsFile: string | null }, name: string, mounts = true): string {
  const copy = join(out.path, `${name}.aci`)
  copyFileSync(image.image, copy)
  rmSync(join(out.path, `${name}.mounts`), { force: true })
  if (mounts) copyFileSync(image.mountsFile!, join(out.path, `${name}.mounts`))
  return copy
}

/** The thin image with its manifest rewritten by `edit`, tarred again by tar. */
function withManifest(name: string, edit: (manifest: Record<string, unknown>) => unknown): string {
  const dir = join(scratch.path, name)
  mkdirSync(dir)
  execFileSync('tar', ['-xzf', thin.image, '-C', dir])
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest'), 'utf8')) as Record<string, unknown>
  writeFileSync(join(dir, 'manifest'), JSON.stringify(edit(manifest)))
  const image = copyOf(thin, name)
  execFileSync('tar', ['-czf', image, '-C', dir, 'manifest', 'rootfs'])
  return image
}

const validateJson = (args: string[], env = fixtureEnv()) => {
  const run = runCli(['validate', '--json', ...args], { env })
  return {
    ...run,
    reports: run.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line)),
  }
}

describe('validate agrees with rkt about volumes', () => {
  it('warns, with the --volume to add, about a mount point the .mounts file leaves open', () => {
    const run = runCli(['validate', withMounts.image])
    expect(run.status, run.stdout).toBe(0)
    expect(run.stdout).toMatch(/etcd-node\.aci: valid \(actool passed\)\n/)
    expect(run.stdout).toContain(
      '  warning: mount point config (/etc/etcd) has no volume: rkt run needs --volume=config,kind=host,source=HOST_PATH\n',
    )
    expect(run.stdout).not.toContain('mount point data ')
    const [report] = validateJson([withMounts.image]).reports
    expect(report).toMatchObject({ valid: true, warnings: [expect.stringContaining('--volume=config,kind=host')] })
  })

  it('refuses a thin image without its .mounts file', () => {
    const image = copyOf(thin, 'no-mounts', false)
    const { status, reports } = validateJson([image])
    expect(status).toBe(1)
    expect(reports[0].problems).toContainEqual(
      expect.stringMatching(
        /^no .*no-mounts\.mounts beside the image: rkt run needs a --volume for each of its 4 store mount points$/,
      ),
    )
  })

  it('refuses a .mounts file that does not match the manifest', () => {
    const image = copyOf(thin, 'other-mounts', false)
    copyFileSync(withMounts.mountsFile!, join(out.path, 'other-mounts.mounts'))
    const { status, reports } = validateJson([image])
    expect(status).toBe(1)
    const problems = reports[0].problems.join('\n')
    expect(problems).toMatch(/other-mounts\.mounts does not match the image: volumes for no mount point: .*data/)
    expect(problems).toMatch(/store mount points without a volume: .*hello-1-0/)
  })

  it('refuses a .mounts file whose store volume points elsewhere', () => {
    const image = copyOf(thin, 'moved-mounts')
    const mounts = join(out.path, 'moved-mounts.mounts')
    const text = readFileSync(mounts, 'utf8')
    const glibc = /source=(\/nix\/store\/[^,]*-glibc-[^,]*)/.exec(text)![1]!
    writeFileSync(mounts, text.replace(`source=${glibc}`, 'source=/tmp'))
    const { status, reports } = validateJson([image])
    expect(status).toBe(1)
    expect(reports[0].problems.join('\n')).toContain(`whose volume has another source: `)
    expect(reports[0].problems.join('\n')).toContain(`(/tmp, not ${glibc})`)
  })

  it('refuses a .mounts file that is not --volume arguments', () => {
    const image = copyOf(thin, 'junk-mounts')
    writeFileSync(join(out.path, 'junk-mounts.mounts'), '--volume=a,kind=host,source=relative\n')
    const { status, reports } = validateJson([image])
    expect(status).toBe(1)
    expect(reports[0].problems.join('\n')).toMatch(/junk-mounts\.mounts: --volume=a.*: source must be an absolute path/)
  })
})

describe('validate checks the signature beside an image', () => {
  const key = makeThrowawayKey('nix2aci validate <validate@nix2aci.invalid>')
  const stranger = makeThrowawayKey('stranger <stranger@nix2aci.invalid>')
  afterAll(() => {
    key.remove()
    stranger.remove()
  })
  let signed: ReturnType<typeof buildJson>
  beforeAll(() => {
    signed = buildJson(['thin', 'signed', 'hello', 'hello', '--out-dir', out.path, '--sign'], {
      env: fixtureEnv({ GNUPGHOME: key.home }),
    })
  })

  it('reports a good signature, one made by a key gpg does not have, and a tampered image', () => {
    const good = runCli(['validate', signed.image], { env: fixtureEnv({ GNUPGHOME: key.home }) })
    expect(good.status, good.stdout).toBe(0)
    expect(good.stdout).toMatch(/signed\.aci: valid \(actool passed, signature good\)/)

    const unknown = validateJson([signed.image], fixtureEnv({ GNUPGHOME: stranger.home }))
    expect(unknown.status).toBe(1)
    expect(unknown.reports[0]).toMatchObject({ signature: 'unverified', valid: false })
    expect(unknown.reports[0].problems.join('\n')).toMatch(
      /signature .*signed\.aci\.asc: unverified: .*(No public key|public key)/i,
    )

    const tampered = copyOf(signed, 'tampered')
    copyFileSync(signed.signature!, `${tampered}.asc`)
    appendFileSync(tampered, 'x')
    const bad = validateJson([tampered], fixtureEnv({ GNUPGHOME: key.home }))
    expect(bad.status).toBe(1)
    expect(bad.reports[0].signature).toBe('bad')
    expect(bad.reports[0].problems.join('\n')).toMatch(/BAD signature/)
  })
})

describe('validate takes several images', () => {
  it('reports each, one JSON object per line with --json, and fails if any is invalid', () => {
    const gone = join(out.path, 'gone.aci')
    const human = runCli(['validate', thin.image, gone])
    expect(human.status).toBe(1)
    expect(human.stdout).toMatch(/hello-thin\.aci: valid .*\n.*gone\.aci: invalid\n {2}no such image/)
    const { status, reports } = validateJson([thin.image, gone, withMounts.image])
    expect(status).toBe(1)
    expect(reports.map((report) => [report.image, report.valid])).toEqual([
      [thin.image, true],
      [gone, false],
      [withMounts.image, true],
    ])
    expect(validateJson([thin.image, withMounts.image]).status).toBe(0)
  })
})

describe('inspect and validate on bad input: one line, exit 1', () => {
  it('refuses a device without reading it (inspect /dev/zero returns)', () => {
    const run = runCli(['inspect', '/dev/zero'])
    expect(run.status).toBe(1)
    expect(run.stderr).toBe('nix2aci: /dev/zero is not an image: it is not a regular file\n')
    const { status, reports } = validateJson(['/dev/zero'])
    expect(status).toBe(1)
    expect(reports[0]).toMatchObject({
      actool: 'not run',
      problems: ['/dev/zero is not an image: it is not a regular file'],
    })
  })

  it('refuses a directory', () => {
    const run = runCli(['inspect', scratch.path])
    expect(run.status).toBe(1)
    expect(run.stderr).toBe(`nix2aci: ${scratch.path} is not an image: it is a directory\n`)
    const validate = runCli(['validate', scratch.path])
    expect(validate.status).toBe(1)
    expect(validate.stdout).toContain('is not an image: it is a directory')
    expect(validate.stderr).toBe('')
  })

  it('refuses an ill-typed manifest', () => {
    const image = withManifest('ill-typed', (manifest) => ({ ...manifest, labels: 'amd64' }))
    const run = runCli(['inspect', image])
    expect(run.status).toBe(1)
    expect(run.stderr).toMatch(
      /^nix2aci: .*ill-typed\.aci has an ill-formed manifest: manifest\.labels has the wrong type\n$/,
    )
    const validate = validateJson([image])
    expect(validate.status).toBe(1)
    expect(validate.reports[0].problems.join('\n')).toContain('manifest.labels has the wrong type')
  })

  it('says "rejected" when actool ran and rejected the image', () => {
    const image = withManifest('bad-name', (manifest) => ({ ...manifest, name: 'Not_An_AC_Identifier' }))
    const { status, reports } = validateJson([image])
    expect(status).toBe(1)
    expect(reports[0].actool).toBe('rejected')
    expect(reports[0].problems.join('\n')).toMatch(/actool validate rejected .*bad-name\.aci: /)
  })

  it('refuses tar entries that climb out of the image, also without actool', () => {
    const image = join(out.path, 'escape.aci')
    const dir = join(scratch.path, 'escape')
    mkdirSync(dir)
    execFileSync('tar', ['-xzf', thin.image, '-C', dir])
    // tar itself would not write such names; Python's tarfile writes what it is told.
    execFileSync('python3', [
      '-c',
      `import tarfile, sys
with tarfile.open(sys.argv[1], 'w:gz') as t:
    t.add(sys.argv[2] + '/manifest', 'manifest')
    t.add(sys.argv[2] + '/rootfs', 'rootfs')
    info = tarfile.TarInfo('rootfs/../../x'); t.addfile(info)
    info = tarfile.TarInfo('/etc/y'); t.addfile(info)`,
      image,
      dir,
    ])
    copyFileSync(thin.mountsFile!, join(out.path, 'escape.mounts'))
    const env = fixtureEnv({ PATH: pathWithout('actool', scratch.path) })
    const { status, reports } = validateJson([image], env)
    expect(status).toBe(1)
    expect(reports[0].actool).toBe('not installed')
    expect(reports[0].problems).toContain(
      'entries outside the image (absolute or climbing out with ..): rootfs/../../x, /etc/y',
    )
  })
})

describe('a compressor missing on PATH', () => {
  it('is refused in one line before any Nix work', () => {
    const dir = join(out.path, 'no-xz')
    const env = fixtureEnv({ PATH: pathWithout('xz', scratch.path) })
    // A package that does not exist: had Nix run first, its error would come instead.
    const run = runCli(['fat', 'no-xz', 'hello', 'no-such-package', '--compression', 'xz', '--out-dir', dir], { env })
    expect(run.status).toBe(1)
    expect(run.stderr).toBe(
      'nix2aci: --compression xz: xz is not installed (not on PATH); install it with: sudo apt-get install xz-utils\n',
    )
    expect(existsSync(dir)).toBe(false)
  })
})
