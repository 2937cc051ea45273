// Thin images to other hosts (export, import, copy) and as systemd services (unit), against the real
// Nix store: an image's closure is deleted from the store and comes back from its export file.
import { execFileSync, spawnSync } from 'node:child_process'
import {
  existsSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runAci } from './harness/run-aci.js'
import { buildJson, fixtureEnv, fixtures, makeTempDir, repoRoot, runCli, snapshotDir } from './helpers/cli.js'
import { makeThrowawayKey, type ThrowawayKey } from './helpers/gpg.js'
import { noLoopbackSshd, startLoopbackSshd, type LoopbackSshd } from './helpers/sshd.js'

const nixStore = (...args: string[]) =>
  execFileSync('nix-store', args, { encoding: 'utf8' }).split('\n').filter(Boolean)
const shellWord = (word: string) => `'${word.replaceAll("'", "'\\''")}'`
const valid = (path: string) => spawnSync('nix-store', ['--check-validity', path]).status === 0

/**
 * A package of its own (a timestamped name, so a new store path each run) that runs with the fixtures'
 * busybox: its closure, less what the fixtures root, can be deleted from the store.
 */
function writeTravelPackage(dir: string, greeting: string): string {
  const file = join(dir, 'travel.nix')
  const script = `mkdir -p $out/bin; printf '#!%s/bin/sh\\necho %s\\n' $busybox ${greeting} > $out/bin/greet; chmod +x $out/bin/greet`
  writeFileSync(
    file,
    `let fixtures = import ${fixtures} {}; in { greet = derivation { name = "greet-${Date.now()}"; system = builtins.currentSystem;
       builder = "/bin/sh"; PATH = "/usr/bin:/bin"; busybox = fixtures.busybox; args = [ "-c" ${JSON.stringify(script)} ]; }; }`,
  )
  return file
}

describe('export and import', () => {
  const scratch = makeTempDir()
  const built = join(scratch.path, 'built')
  const imported = join(scratch.path, 'imported')
  const exportFile = join(scratch.path, 'greet.nix2aci')
  let image: ReturnType<typeof buildJson>
  let deletable: string[]
  beforeAll(() => {
    const file = writeTravelPackage(scratch.path, 'hello-from-afar')
    image = buildJson(['thin', 'travel/greet', 'greet', 'greet', '-f', file, '--out-dir', built])
    const rooted = new Set(nixStore('-qR', join(repoRoot, '.test-roots/fixtures')))
    deletable = nixStore('-qR', image.profile!).filter((path) => !rooted.has(path))
  })
  afterAll(() => scratch.remove())

  it('ships a thin image whose closure was deleted from the store, and the image runs with its .mounts', async () => {
    const exported = runCli(['export', image.image, '-o', exportFile])
    expect(exported.status, exported.stderr).toBe(0)
    expect(exported.stdout).toMatch(/^exported travel\/greet to .*greet\.nix2aci \(\d+ store paths/)
    const listing = execFileSync('tar', ['-tf', exportFile], { encoding: 'utf8' })
    // A tar of the small parts; the closure follows the archive's end (tar stops there).
    expect(listing.split('\n').filter(Boolean)).toEqual(['nix2aci-export.json', 'image.aci', 'image.mounts'])

    // The image's GC root goes, then its closure (what the fixtures do not keep alive).
    for (const name of readdirSync(built)) if (name.startsWith('travel-greet.profile')) rmSync(join(built, name))
    expect(deletable.length).toBeGreaterThanOrEqual(2) // the package and the user environment
    // With what refers to them (the user environment's .drv names the package and the manifest).
    const doomed = nixStore('-q', '--referrers-closure', ...deletable)
    const deleted = spawnSync('nix-store', ['--delete', ...doomed], { encoding: 'utf8' })
    expect(deleted.status, deleted.stderr).toBe(0)
    expect(deletable.filter(valid)).toEqual([])

    const done = runCli(['import', exportFile, '--out-dir', imported])
    expect(done.status, done.stderr).toBe(0)
    expect(done.stdout).toMatch(/^imported travel\/greet: .*travel-greet\.aci/)
    expect(deletable.filter((path) => !valid(path))).toEqual([])
    expect(readdirSync(imported).sort()).toEqual([
      'travel-greet.aci',
      'travel-greet.mounts',
      'travel-greet.profile',
      'travel-greet.profile-1-link',
    ])
    expect(readFileSync(join(imported, 'travel-greet.aci'))).toEqual(readFileSync(image.image))
    // The profile is the closure's GC root again: a collection keeps it.
    expect(nixStore('--gc', '--print-dead').filter((path) => deletable.includes(path))).toEqual([])
    const ran = await runAci(join(imported, 'travel-greet.aci'), { mounts: join(imported, 'travel-greet.mounts') })
    expect(ran.stdout.trim(), ran.stderr).toBe('hello-from-afar')

    // Importing the same image again changes nothing and succeeds.
    expect(runCli(['import', exportFile, '--out-dir', imported]).status).toBe(0)
  })

  it('ships through a pipe (export -o - | import -), and the image runs with its .mounts', async () => {
    const source = join(imported, 'travel-greet.aci')
    const piped = join(scratch.path, 'piped')
    const cli = `${shellWord(process.execPath)} ${shellWord(join(repoRoot, 'dist/bin/nix2aci.js'))}`
    const pipe = (tail: string) =>
      spawnSync('sh', ['-c', `${cli} export ${shellWord(source)} -o - | ${tail}`], {
        encoding: 'utf8',
        env: fixtureEnv(),
      })
    // sh reports the last command's status: import's. Export's own report is checked on stderr.
    const done = pipe(`${cli} import - --out-dir ${shellWord(piped)}`)
    expect(done.status, done.stderr).toBe(0)
    expect(done.stderr).toMatch(/^exported travel\/greet to the standard output \(\d+ store paths\)\n$/)
    expect(done.stdout).toMatch(/^imported travel\/greet: .*piped\/travel-greet\.aci/)
    expect(readFileSync(join(piped, 'travel-greet.aci'))).toEqual(readFileSync(image.image))
    expect(nixStore('-qR', join(piped, 'travel-greet.profile')).sort()).toEqual(
      nixStore('-qR', join(imported, 'travel-greet.profile')).sort(),
    )
    const ran = await runAci(join(piped, 'travel-greet.aci'), { mounts: join(piped, 'travel-greet.mounts') })
    expect(ran.stdout.trim(), ran.stderr).toBe('hello-from-afar')

    // A stream cut short, in its closure or before it: one line, and no image.
    const cutDir = join(scratch.path, 'cut')
    for (const bytes of [200_000, 3_000]) {
      const cut = pipe(`head -c ${bytes} | ${cli} import - --out-dir ${shellWord(cutDir)}`)
      expect(cut.status).toBe(1)
      expect(cut.stderr).toMatch(/^nix2aci: the standard input is truncated: it ends in .*$/m)
      expect(existsSync(join(cutDir, 'travel-greet.aci'))).toBe(false)
    }
  })

  it('refuses to export an image whose closure is gone from the store, writing nothing', () => {
    const out = join(scratch.path, 'gone.nix2aci')
    const run = runCli(['export', image.image, '-o', out])
    expect(run.status).toBe(1)
    expect(run.stderr).toMatch(/^nix2aci: the closure of .* is no longer in the store .*rebuild the image\n$/)
    expect(readdirSync(scratch.path).filter((name) => name.includes('gone'))).toEqual([])
  })

  it('refuses to export an image whose profile leads to a path this store does not know, in one line', () => {
    // The user environment is on disk, but the store asked (an empty one of its own) has no record of it.
    const hello = buildJson(['thin', 'hello-unknown', 'hello', 'hello', '--out-dir', join(scratch.path, 'unknown')])
    const out = join(scratch.path, 'unknown.nix2aci')
    const run = runCli(['export', hello.image, '-o', out], {
      env: fixtureEnv({ NIX_REMOTE: `local?root=${join(scratch.path, 'empty-store')}` }),
    })
    expect(run.status).toBe(1)
    expect(run.stderr).toMatch(
      /^nix2aci: the closure of .*hello-unknown\.aci is no longer in the store .*rebuild the image\n$/,
    )
    expect(existsSync(out)).toBe(false)
  })

  it('refuses to export a fat image in one line', () => {
    const fat = buildJson(['fat', 'hello-fat', 'hello', 'hello', '--out-dir', join(scratch.path, 'fat')])
    const run = runCli(['export', fat.image, '-o', join(scratch.path, 'fat.nix2aci')])
    expect(run.status).toBe(1)
    expect(run.stderr).toMatch(
      /^nix2aci: .*hello-fat\.aci is not a thin image \(it is a fat one, self-contained: copy its \.aci\).*\n$/,
    )
    expect(existsSync(join(scratch.path, 'fat.nix2aci'))).toBe(false)
  })

  it('refuses a truncated file, a foreign one, an older version of the format and a different image of the same name, each in one line, leaving the out-dir as it was', () => {
    const truncated = join(scratch.path, 'truncated.nix2aci')
    writeFileSync(truncated, readFileSync(exportFile))
    truncateSync(truncated, Math.floor(readFileSync(exportFile).length / 2))
    const fresh = join(scratch.path, 'fresh')
    const cut = runCli(['import', truncated, '--out-dir', fresh])
    expect(cut.status).toBe(1)
    expect(cut.stderr).toMatch(/^nix2aci: .*truncated\.nix2aci is truncated: .*\n$/)
    expect(existsSync(fresh)).toBe(false)

    const foreign = join(scratch.path, 'foreign.nix2aci')
    writeFileSync(foreign, 'not an export\n'.repeat(100))
    const alien = runCli(['import', foreign, '--out-dir', fresh])
    expect(alien.status).toBe(1)
    expect(alien.stderr).toMatch(/^nix2aci: .*foreign\.nix2aci is not a nix2aci export file: .*\n$/)
    expect(existsSync(fresh)).toBe(false)

    // A header naming a user environment its closure does not bring: refused after the import, no profile.
    const header = JSON.parse(execFileSync('tar', ['-xOf', exportFile, 'nix2aci-export.json'], { encoding: 'utf8' }))
    const absent = header.userEnvironment.replace(/\/[0-9a-z]{32}-/, `/${'0'.repeat(32)}-`)
    const unrooted = join(scratch.path, 'unrooted.nix2aci')
    writeFileSync(
      unrooted,
      Buffer.from(readFileSync(exportFile).toString('latin1').replace(header.userEnvironment, absent), 'latin1'),
    )
    const unbrought = runCli(['import', unrooted, '--out-dir', fresh])
    expect(unbrought.status).toBe(1)
    expect(unbrought.stderr).toBe(
      `nix2aci: ${unrooted} did not bring its closure: its user environment ${absent} is not here\n`,
    )
    expect(existsSync(fresh)).toBe(false)

    // A file an earlier nix2aci wrote (version 2: its header listed the closure's paths too).
    const older = join(scratch.path, 'older.nix2aci')
    writeFileSync(
      older,
      Buffer.from(readFileSync(exportFile).toString('latin1').replace('"version":3', '"version":2'), 'latin1'),
    )
    const old = runCli(['import', older, '--out-dir', fresh])
    expect(old.status).toBe(1)
    expect(old.stderr).toBe('nix2aci: export file version 2 is not one this nix2aci reads (3): export it again\n')
    expect(existsSync(fresh)).toBe(false)

    const other = join(scratch.path, 'other')
    buildJson(['thin', 'travel/greet', 'sh', 'busybox', '--out-dir', other])
    const before = snapshotDir(other)
    const clash = runCli(['import', exportFile, '--out-dir', other])
    expect(clash.status).toBe(1)
    expect(clash.stderr).toMatch(
      /^nix2aci: cannot import travel\/greet: .*travel-greet\.aci is a different image of that name .*\n$/,
    )
    expect(snapshotDir(other)).toEqual(before)
  })
})

describe('copy', () => {
  const out = makeTempDir()
  let image: ReturnType<typeof buildJson>
  beforeAll(() => {
    image = buildJson(['thin', 'bb', 'sh', 'busybox', '--out-dir', out.path])
  })
  afterAll(() => out.remove())

  it('prints its commands with --dry-run, every ssh with the options of NIX_SSHOPTS', () => {
    const run = runCli(['copy', image.image, '--to', 'ssh://deploy@web1/srv/acis', '--dry-run'], {
      env: fixtureEnv({ NIX_SSHOPTS: '-p 2222  -i /keys/deploy' }),
    })
    expect(run.status, run.stderr).toBe(0)
    const userEnvironment = execFileSync('readlink', ['-f', image.profile!], { encoding: 'utf8' }).trim()
    const lines = run.stdout.split('\n').filter(Boolean)
    const staging = /\/srv\/acis\/\.bb\.mounts\.([0-9a-f]{8})\.tmp/.exec(lines[3] ?? '')?.[1]
    const temporary = (name: string) => `/srv/acis/.${name}.${staging}.tmp`
    const upload = (name: string) =>
      `ssh -p 2222 -i /keys/deploy deploy@web1 'cat > ${temporary(name)}' < ${out.path}/${name}`
    const rename = (name: string) => `mv ${temporary(name)} /srv/acis/${name}`
    expect(lines).toEqual([
      `nix-copy-closure --to deploy@web1 ${userEnvironment}`,
      `ssh -p 2222 -i /keys/deploy deploy@web1 'mkdir -p /srv/acis'`,
      `ssh -p 2222 -i /keys/deploy deploy@web1 'nix-env -p /srv/acis/bb.profile --set ${userEnvironment}'`,
      upload('bb.mounts'),
      upload('bb.aci'),
      `ssh -p 2222 -i /keys/deploy deploy@web1 '${rename('bb.mounts')} && ${rename('bb.aci')}'`,
    ])
  })

  it('refuses a target that is not ssh:// in one line', () => {
    const run = runCli(['copy', image.image, '--to', 'web1:/srv'])
    expect(run.status).toBe(1)
    expect(run.stderr).toMatch(
      /^nix2aci: cannot copy to web1:\/srv: the target must be ssh:\/\/\[user@\]host\[\/dir\].*\n$/,
    )
  })
})

describe.skipIf(noLoopbackSshd)('copy over SSH to a real sshd (needs root, unshare, nsenter, openssh-server)', () => {
  const scratch = makeTempDir('nix2aci-copy-')
  // The "remote host": sshd on 127.0.0.1 in a namespace of its own, whose sessions (nix-copy-closure's
  // nix-store --serve, and nix-env) use a store of their own, so the closure really travels.
  const remoteStore = join(scratch.path, 'remote-store')
  const remoteNix = { ...process.env, NIX_REMOTE: `local?root=${remoteStore}` }
  const remoteDir = join(scratch.path, 'remote', 'acis')
  let key: ThrowawayKey | undefined
  let sshd: LoopbackSshd
  let image: ReturnType<typeof buildJson>
  const copy = (target: string, sshOptions = sshd.sshOptions) =>
    sshd.run([process.execPath, join(repoRoot, 'dist/bin/nix2aci.js'), 'copy', image.image, '--to', target], {
      env: fixtureEnv({ NIX_SSHOPTS: sshOptions }),
    })
  beforeAll(async () => {
    sshd = await startLoopbackSshd({ NIX_REMOTE: remoteNix.NIX_REMOTE })
    const file = writeTravelPackage(scratch.path, 'hello-over-ssh')
    key = makeThrowawayKey('nix2aci copy test <copy@nix2aci.invalid>')
    image = buildJson(
      [
        ...['thin', 'travel/ssh', 'greet', 'greet', '-f', file, '--out-dir', join(scratch.path, 'built')],
        ...['--sign', '--key', key.fingerprint],
      ],
      { env: fixtureEnv({ GNUPGHOME: key.home }) },
    )
  })
  afterAll(async () => {
    await sshd?.stop()
    key?.remove()
    scratch.remove()
  })

  it('ships the closure into the remote store, roots it there, and places .mounts, .asc and the image beside it', async () => {
    const run = copy(`ssh://${sshd.host}${remoteDir}`)
    expect(run.status, run.stderr).toBe(0)
    expect(run.stdout).toMatch(/^copied .*travel-ssh\.aci to ssh:\/\/root@127\.0\.0\.1\/.*\n$/)
    expect(readdirSync(remoteDir).sort()).toEqual([
      'travel-ssh.aci',
      'travel-ssh.aci.asc',
      'travel-ssh.mounts',
      'travel-ssh.profile',
      'travel-ssh.profile-1-link',
    ])
    for (const name of ['travel-ssh.aci', 'travel-ssh.aci.asc', 'travel-ssh.mounts'])
      expect(readFileSync(join(remoteDir, name)), name).toEqual(readFileSync(join(scratch.path, 'built', name)))
    const userEnvironment = realpathSync(image.profile!)
    expect(readlinkSync(join(remoteDir, readlinkSync(join(remoteDir, 'travel-ssh.profile'))))).toBe(userEnvironment)

    // The remote store holds the whole closure, valid, and its profile keeps it from the collector.
    const closure = nixStore('-qR', userEnvironment)
    const remoteStoreRun = (...args: string[]) => spawnSync('nix-store', args, { env: remoteNix, encoding: 'utf8' })
    const validity = remoteStoreRun('--check-validity', ...closure)
    expect(validity.status, validity.stderr).toBe(0)
    expect(remoteStoreRun('-qR', userEnvironment).stdout.split('\n').filter(Boolean).sort()).toEqual(closure.sort())
    const dead = remoteStoreRun('--gc', '--print-dead').stdout.split('\n')
    expect(closure.filter((path) => dead.includes(path))).toEqual([])

    const ran = await runAci(join(remoteDir, 'travel-ssh.aci'), { mounts: join(remoteDir, 'travel-ssh.mounts') })
    expect(ran.stdout.trim(), ran.stderr).toBe('hello-over-ssh')
  })

  it('stops at the first step that fails, in one line, leaving no image on the remote host', () => {
    // No sshd on that port: nix-copy-closure, the first step, cannot connect.
    const unreachable = copy(
      `ssh://${sshd.host}${join(scratch.path, 'unreachable')}`,
      sshd.sshOptions.replace('-p 2222', '-p 2223'),
    )
    expect(unreachable.status).toBe(1)
    expect(unreachable.stderr).toMatch(
      /^nix2aci: copy: nix-copy-closure --to root@127\.0\.0\.1 \/nix\/store\/\S+ failed: .*\n$/,
    )
    expect(existsSync(join(scratch.path, 'unreachable'))).toBe(false)

    // A remote directory that cannot be made (a file is in the way): the closure went, nothing else.
    const blocked = join(scratch.path, 'blocked')
    writeFileSync(blocked, '')
    const failed = copy(`ssh://${sshd.host}${blocked}/acis`)
    expect(failed.status).toBe(1)
    expect(failed.stderr).toMatch(
      /^nix2aci: copy: root@127\.0\.0\.1: mkdir -p \S+\/blocked\/acis failed: mkdir: .*Not a directory\n$/,
    )
  })
})

/** ExecStart='s words as systemd reads them back (systemd.service(5): quotes, C escapes, %% and $$). */
function systemdWords(line: string): string[] {
  const words: string[] = []
  for (const [, quoted, bare] of line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)) {
    const word =
      quoted !== undefined ? quoted.replace(/\\(.)/g, (_, c: string) => ({ n: '\n', t: '\t' })[c] ?? c) : bare!
    const unescaped = word.replaceAll('%%', '%')
    // $ is substituted in arguments only, not in the program's path.
    words.push(words.length === 0 ? unescaped : unescaped.replaceAll('$$', '$'))
  }
  return words
}

describe('unit', () => {
  const out = makeTempDir('nix2aci unit $HOME 100% ')
  let image: ReturnType<typeof buildJson>
  let rkt: string
  beforeAll(() => {
    image = buildJson([
      ...['thin', 'example.com/web', 'sh', 'busybox', '--out-dir', out.path],
      ...['--mount', 'data:/var/lib/web', '--volume', 'data=/tmp'],
      ...['--exec', 'sh -c "ls /var/lib/web >/dev/null && echo served"'],
    ])
    // systemd-analyze checks that ExecStart's program exists; rkt need not be installed to write the unit.
    rkt = join(out.path, 'rkt')
    writeFileSync(rkt, '#!/bin/sh\n', { mode: 0o755 })
  })
  afterAll(() => out.remove())

  it('prints a unit systemd-analyze verify accepts, whose ExecStart runs the image with its volumes', async () => {
    const run = runCli(['unit', image.image, '--rkt', rkt])
    expect(run.status, run.stderr).toBe(0)
    const unit = run.stdout
    expect(unit).toMatch(/^KillMode=mixed$/m)
    expect(unit).toMatch(/^Restart=always$/m)
    const unitFile = join(out.path, 'web.service')
    writeFileSync(unitFile, unit)
    const verify = spawnSync('systemd-analyze', ['verify', unitFile], { encoding: 'utf8' })
    expect(verify.status, verify.stderr).toBe(0)
    expect(verify.stderr.split('\n').filter((line) => line.includes('web.service'))).toEqual([])

    const execStart = /^ExecStart=(.*)$/m.exec(unit)![1]!
    const words = systemdWords(execStart)
    expect(words.slice(0, 3)).toEqual([rkt, 'run', '--insecure-options=image'])
    expect(words.at(-1)).toBe(image.image)
    // The volumes the unit passes fill every mount point the image has.
    const mounts = join(out.path, 'from-unit.mounts')
    writeFileSync(mounts, words.filter((word) => word.startsWith('--volume=')).join(' '))
    const ran = await runAci(words.at(-1)!, { mounts })
    expect(ran.stdout.trim(), ran.stderr).toBe('served')
  })

  it("fetches a layered image's layers in ExecStartPre, and systemd-analyze verify accepts it", () => {
    const layered = buildJson(['layered', 'example.com/hello-layered', 'hello', 'hello', '--out-dir', out.path])
    const run = runCli(['unit', layered.image, '--rkt', rkt, '--name', 'hello'])
    expect(run.status, run.stderr).toBe(0)
    const pre = systemdWords(/^ExecStartPre=(.*)$/m.exec(run.stdout)![1]!)
    expect(pre.slice(0, 3)).toEqual([rkt, 'fetch', '--insecure-options=image'])
    const layers = pre.slice(3)
    expect(layers.length).toBeGreaterThan(0)
    for (const layer of layers) expect(existsSync(layer), layer).toBe(true)
    const unitFile = join(out.path, 'hello.service')
    writeFileSync(unitFile, run.stdout)
    const verify = spawnSync('systemd-analyze', ['verify', unitFile], { encoding: 'utf8' })
    expect(verify.status, verify.stderr).toBe(0)
  })

  it('refuses a service name systemd would not take', () => {
    const run = runCli(['unit', image.image, '--rkt', rkt, '--name', 'my web'])
    expect(run.status).toBe(1)
    expect(run.stderr).toBe("nix2aci: not a systemd service name: 'my web' (letters, digits and :_.\\- only)\n")
  })
})
