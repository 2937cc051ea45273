// The outputs of a build as one unit: builds of one name serialize, a killed build's leftovers are
// cleaned up by the next one, a rival's failure never takes the good image's GC root, and an out-dir
// or output path nix2aci cannot use is refused in one line with nothing replaced.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { fixtureEnv, listImage, makeTempDir, repoRoot, runCli, writeShellPackage, type CliRun } from './helpers/cli.js'
import { closureOf } from './helpers/closure.js'
import { childrenRunning } from './helpers/proc.js'
import { pollFor } from './helpers/wait.js'

const dir = makeTempDir()
afterAll(() => dir.remove())

/** A fresh package (the time is in its name, so Nix really builds it) with `bin/x`, taking `seconds`. */
function slowPackage(attr: string, seconds: number, { binary = true } = {}): string {
  const install = binary ? `; printf '#!/bin/sh\\necho ${attr}\\n' > $out/bin/x; chmod +x $out/bin/x` : ''
  return writeShellPackage(dir.path, attr, `${attr}-${Date.now()}`, `sleep ${seconds}; mkdir -p $out/bin${install}`)
}

/** nix2aci started in its own process group, as a shell job would be. */
function startCli(args: string[]) {
  const child = spawn(process.execPath, [join(repoRoot, 'dist/bin/nix2aci.js'), ...args], {
    env: fixtureEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const done = new Promise<CliRun>((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })))
  return { child, done, stderr: () => stderr }
}

/** Waits until the build's own nix-env runs: it has the name's lock by then. */
async function untilNixEnvRuns(build: ReturnType<typeof startCli>) {
  await pollFor('no nix-env child of nix2aci', 30_000, () => {
    if (build.child.exitCode !== null) throw new Error(`nix2aci exited before nix-env ran:\n${build.stderr()}`)
    return childrenRunning(build.child.pid!, 'nix-env').length > 0 ? true : undefined
  })
}

type Manifest = { app: { exec: string[]; mountPoints: { name: string; path: string }[] } }

const leftovers = (out: string) => readdirSync(out).filter((entry) => /\.building-|\.commit$/.test(entry))

/** The sources of a .mounts file's volumes, sorted. */
function volumeSources(mountsFile: string): string[] {
  const words = readFileSync(mountsFile, 'utf8').trim().split(/\s+/)
  return words.map((word) => /,source=([^,]+)/.exec(word)![1]!).sort()
}

/**
 * The .aci, .mounts and .profile of `name` describe one image: the manifest's mount points are the
 * .mounts volumes and the profile's closure, and exec lies in the profile. Returns the exec.
 */
function expectOneThinImage(out: string, name: string): string {
  const manifest = listImage(join(out, `${name}.aci`)).manifest as Manifest
  const storeMounts = manifest.app.mountPoints.map((m) => m.path).filter((path) => path.startsWith('/nix/store/'))
  const profile = join(out, `${name}.profile`)
  expect(storeMounts.sort()).toEqual(closureOf(profile))
  const sources = volumeSources(join(out, `${name}.mounts`)).filter((path) => path.startsWith('/nix/store/'))
  expect(sources).toEqual(storeMounts.sort())
  expect(manifest.app.exec[0]!.startsWith(`${realpathSync(profile)}/`), manifest.app.exec[0]).toBe(true)
  expect(leftovers(out)).toEqual([])
  return manifest.app.exec[0]!
}

describe('builds of one name in one out-dir at once', () => {
  it('serialize: the later ones wait, and the files then describe the last one', async () => {
    const out = join(dir.path, 'thin-race')
    const first = startCli(['thin', 'app', 'x', 'slowthin', '-f', slowPackage('slowthin', 3), '--out-dir', out])
    await untilNixEnvRuns(first)
    const second = startCli(['thin', 'app', 'etcd', 'etcd', '--out-dir', out])
    await pollFor('the second build saying it waits', 30_000, () =>
      second.stderr().includes('Waiting for the other build of app') ? true : undefined,
    )
    const third = startCli(['thin', 'app', 'hello', 'hello', '--out-dir', out])
    const runs = await Promise.all([first.done, second.done, third.done])
    for (const run of runs) expect(run.status, run.stderr).toBe(0)
    expect(runs[2]!.stderr).toContain('Waiting for the other build of app')
    // The second and third both waited; whichever ran last is the image now, whole.
    expect(expectOneThinImage(out, 'app')).toMatch(/\/bin\/(etcd|hello)$/)
  })

  it('wait in a way that Ctrl-C still stops', async () => {
    const out = join(dir.path, 'wait-interrupted')
    const holder = startCli(['thin', 'app', 'x', 'holder', '-f', slowPackage('holder', 3), '--out-dir', out])
    await untilNixEnvRuns(holder)
    const waiter = startCli(['thin', 'app', 'hello', 'hello', '--out-dir', out])
    await pollFor('the second build saying it waits', 30_000, () =>
      waiter.stderr().includes('Waiting for the other build of app') ? true : undefined,
    )
    process.kill(-waiter.child.pid!, 'SIGINT') // a terminal's Ctrl-C, to the waiting build's job
    expect((await waiter.done).status).toBe(130)
    expect(holder.child.exitCode, 'the waiter stopped only once the holder was done').toBe(null)
    const held = await holder.done
    expect(held.status, held.stderr).toBe(0)
    expect(expectOneThinImage(out, 'app')).toMatch(/\/bin\/x$/)
  })

  it('serialize for fat images and spec builds too', async () => {
    const out = join(dir.path, 'fat-race')
    const fat = startCli(['fat', 'app', 'x', 'slowfat', '-f', slowPackage('slowfat', 3), '--out-dir', out])
    await untilNixEnvRuns(fat)
    const spec = join(dir.path, 'race.json')
    writeFileSync(
      spec,
      JSON.stringify({ outDir: out, images: [{ name: 'app', kind: 'fat', binary: 'hello', packages: ['hello'] }] }),
    )
    const specBuild = startCli(['build', '-c', spec])
    const runs = await Promise.all([fat.done, specBuild.done])
    for (const run of runs) expect(run.status, run.stderr).toBe(0)
    expect(runs[1]!.stderr).toContain('Waiting for the other build of app')
    const { manifest, entries } = listImage(join(out, 'app.aci'))
    const exec = (manifest as Manifest).app.exec[0]!
    expect(exec).toMatch(/\/bin\/hello$/)
    // Its user environment (where exec lies) is inside the image: the closure of this build, not the other's.
    const userEnvironment = exec.slice(0, exec.lastIndexOf('/bin/'))
    expect(
      entries.some((entry) => entry.split(' ')[2] === `rootfs${userEnvironment}`),
      exec,
    ).toBe(true)
    expect(existsSync(join(out, 'app.profile'))).toBe(false)
    expect(leftovers(out)).toEqual([])
  })

  it("never take the good image's GC root when they fail", async () => {
    const out = join(dir.path, 'fail-race')
    const good = runCli(['thin', 'app', 'hello', 'hello', '--out-dir', out, '--quiet'])
    expect(good.status, good.stderr).toBe(0)
    const before = readFileSync(join(out, 'app.aci'))
    // Both install a package (a new profile generation each), then fail: it has no bin/nosuch.
    const failing = (attr: string) =>
      startCli(['thin', 'app', 'nosuch', attr, '-f', slowPackage(attr, 2, { binary: false }), '--out-dir', out])
    const rival1 = failing('rival1')
    await untilNixEnvRuns(rival1)
    const rival2 = failing('rival2')
    for (const run of await Promise.all([rival1.done, rival2.done])) {
      expect(run.status, run.stderr).toBe(1)
      expect(run.stderr).toMatch(/binary 'nosuch' is not in the packages/)
    }
    expect(readFileSync(join(out, 'app.aci')).equals(before)).toBe(true)
    collectGarbage()
    const exec = expectOneThinImage(out, 'app')
    expect(exec).toMatch(/\/bin\/hello$/)
    for (const source of volumeSources(join(out, 'app.mounts'))) expect(existsSync(source), source).toBe(true)
  })

  it('keep the GC root of the one that succeeds while a slower rival fails', async () => {
    const out = join(dir.path, 'fail-and-succeed')
    const good = runCli(['thin', 'app', 'hello', 'hello', '--out-dir', out, '--quiet'])
    expect(good.status, good.stderr).toBe(0)
    // The rival started first and fails last, after the other build saved its image.
    const rival = startCli([
      'thin',
      'app',
      'nosuch',
      'late',
      '-f',
      slowPackage('late', 3, { binary: false }),
      '--out-dir',
      out,
    ])
    await untilNixEnvRuns(rival)
    const etcd = startCli(['thin', 'app', 'etcd', 'etcd', '--out-dir', out])
    const [failed, built] = await Promise.all([rival.done, etcd.done])
    expect(failed.status, failed.stderr).toBe(1)
    expect(built.status, built.stderr).toBe(0)
    collectGarbage()
    expect(expectOneThinImage(out, 'app')).toMatch(/\/bin\/etcd$/)
    for (const source of volumeSources(join(out, 'app.mounts'))) expect(existsSync(source), source).toBe(true)
  })
})

describe('a build killed with SIGKILL', () => {
  /** Starts a thin build of `name` and kills it, and its nix-env, while nix-env builds. */
  async function killedBuild(out: string, name: string) {
    const attr = `killed${name}`
    const build = startCli(['thin', name, 'x', attr, '-f', slowPackage(attr, 30), '--out-dir', out])
    await untilNixEnvRuns(build)
    process.kill(-build.child.pid!, 'SIGKILL') // the whole job, as a crash or the OOM killer would
    await build.done
  }

  it('leaves staging that the next build in the out-dir, of that name or another, removes', async () => {
    const out = join(dir.path, 'killed')
    await killedBuild(out, 'app')
    expect(leftovers(out)).toEqual([expect.stringMatching(/^\.app\.building-/)])
    const other = runCli(['thin', 'other', 'hello', 'hello', '--out-dir', out, '--quiet'])
    expect(other.status, other.stderr).toBe(0)
    expect(leftovers(out)).toEqual([])

    await killedBuild(out, 'app')
    expect(leftovers(out)).toEqual([expect.stringMatching(/^\.app\.building-/)])
    const next = runCli(['thin', 'app', 'hello', 'hello', '--out-dir', out, '--quiet'])
    expect(next.status, next.stderr).toBe(0)
    expectOneThinImage(out, 'app')
    expect(readdirSync(out).filter((entry) => entry.startsWith('.'))).toEqual([])
  })
})

describe('a save cut short between its renames', () => {
  it('is finished by the next build of the name, even one that fails', () => {
    const out = join(dir.path, 'cut-short')
    const build = (binary: string, pkg: string) => runCli(['thin', 'app', binary, pkg, '--out-dir', out, '--quiet'])
    expect(build('hello', 'hello').status).toBe(0)
    const oldImage = readFileSync(join(out, 'app.aci'))
    expect(build('etcd', 'etcd').status).toBe(0)
    // What a crash after the first rename leaves: the new .mounts (and profile) beside the old .aci, the
    // new .aci still staged, and the list of renames the save had written down before it began.
    const staging = '.app.building-crash1'
    mkdirSync(join(out, staging))
    renameSync(join(out, 'app.aci'), join(out, staging, 'image.aci'))
    writeFileSync(join(out, 'app.aci'), oldImage)
    const journal = {
      staging,
      renames: [
        [`${staging}/image.mounts`, 'app.mounts'],
        [`${staging}/image.aci`, 'app.aci'],
      ],
      removals: ['app.aci.asc'],
      profile: 'prune',
    }
    writeFileSync(join(out, '.app.commit'), JSON.stringify(journal))
    const failed = build('nosuch', 'hello')
    expect(failed.status).toBe(1)
    expect(failed.stderr).toMatch(/binary 'nosuch' is not in the packages/)
    expect(expectOneThinImage(out, 'app')).toMatch(/\/bin\/etcd$/)
  })
})

describe('outputs nix2aci cannot use', () => {
  it('refuses an out-dir it cannot make, in one line and at once', () => {
    for (const outDir of ['/proc/x', '/proc/x/y', '/dev/null/x']) {
      // A guard, not a timing: before, this looped at 100% CPU and ignored SIGTERM.
      const run = spawnSync(
        process.execPath,
        [join(repoRoot, 'dist/bin/nix2aci.js'), 'thin', 'app', 'hello', 'hello', '--out-dir', outDir, '--quiet'],
        {
          env: fixtureEnv(),
          encoding: 'utf8',
          timeout: 30_000,
          killSignal: 'SIGKILL',
        },
      )
      expect(run.status, `${outDir}: ${run.stderr}`).toBe(1)
      expect(run.stderr.trim().split('\n')).toHaveLength(1)
      expect(run.stderr).toMatch(/cannot write to the output directory/)
    }
  })

  it('refuses a directory where an output goes, and replaces nothing', () => {
    const out = join(dir.path, 'in-the-way')
    const good = runCli(['thin', 'app', 'hello', 'hello', '--out-dir', out, '--quiet'])
    expect(good.status, good.stderr).toBe(0)
    for (const suffix of ['.aci', '.mounts', '.aci.asc']) {
      const target = join(out, `app${suffix}`)
      if (existsSync(target)) renameSync(target, `${target}.aside`)
      mkdirSync(target)
      const before = listing(out)
      const run = runCli(['thin', 'app', 'etcd', 'etcd', '--out-dir', out, '--quiet'])
      expect(run.status).toBe(1)
      expect(run.stderr.trim().split('\n')).toHaveLength(1)
      expect(run.stderr).toMatch(
        new RegExp(`cannot save the image: .*app${suffix.replaceAll('.', '\\.')} is a directory`),
      )
      expect(listing(out)).toEqual(before)
      execFileSync('rmdir', [target])
      if (existsSync(`${target}.aside`)) renameSync(`${target}.aside`, target)
    }
  })
})

/** Each entry of a directory with its bytes (a directory as such), links as their targets. */
function listing(out: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(out).map((entry) => {
      const info = lstatSync(join(out, entry))
      const content = info.isSymbolicLink()
        ? `-> ${realpathSync(join(out, entry))}`
        : info.isDirectory()
          ? 'directory'
          : readFileSync(join(out, entry)).toString('base64')
      return [entry, content]
    }),
  )
}

/** `nix-store --gc`, failing with Nix's own words. */
function collectGarbage() {
  const gc = spawnSync('nix-store', ['--gc'], { encoding: 'utf8' })
  expect(gc.status, gc.stderr).toBe(0)
}
