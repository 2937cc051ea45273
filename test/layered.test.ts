// Layered images: the closure in layer images shared by every image of the out-dir.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { ImageManifest } from '../src/aci/manifest.js'
import { lockLayersFolder } from '../src/pipeline/outputs.js'
import { runAci } from './harness/run-aci.js'
import { removeRktDir } from './helpers/rkt.js'
import {
  actoolValidate,
  buildJson,
  fixtureEnv,
  imageIdOf,
  listImage,
  makeTempDir,
  mountTmpfs,
  onPath,
  repoRoot,
  runCli,
  snapshotDir,
  writeShellPackage,
} from './helpers/cli.js'

const out = makeTempDir()
const NEVER = new AbortController().signal
afterAll(() => out.remove())

const layered = (name: string, binary: string, packages: string[], extra: string[] = [], outDir = out.path) =>
  buildJson(['layered', name, binary, ...packages, '--out-dir', outDir, '--engine', 'native', ...extra])

const manifestOf = (image: string) => listImage(image).manifest as ImageManifest

/** Every file of a folder with its inode: which ones a build wrote anew. */
function inodes(dir: string): Map<string, number> {
  return new Map(readdirSync(dir).map((name) => [name, statSync(join(dir, name)).ino]))
}

function changed(before: Map<string, number>, after: Map<string, number>): string[] {
  return [...after]
    .filter(([name, ino]) => before.get(name) !== ino)
    .map(([name]) => name)
    .sort()
}

describe('nix2aci layered', () => {
  it('writes the glibc layer once for two images, both pinning the same image ID', () => {
    const hello = layered('example.com/hello', 'hello', ['hello'])
    const layers = join(out.path, 'layers')
    const afterHello = inodes(layers)
    const etcd = layered('example.com/etcd', 'etcd', ['etcd'])
    const glibcFile = [...afterHello.keys()].find((file) => /glibc.*\.aci$/.test(file))!
    expect(hello.layers!.written).toContain(glibcFile)
    expect(etcd.layers!.kept).toEqual([glibcFile])
    expect(etcd.layers!.written).toHaveLength(1)
    // etcd wrote its own layer (and its record), and left glibc's file as it was.
    expect(changed(afterHello, inodes(layers))).toEqual(etcd.layers!.written.flatMap((f) => [f, `${f}.id`]))
    const glibcOf = (image: string) =>
      manifestOf(image).dependencies!.find((dependency) => dependency.imageName.endsWith('/glibc-2-36'))!
    expect(glibcOf(hello.image)).toEqual(glibcOf(etcd.image))
    expect(glibcOf(hello.image).imageID).toBe(imageIdOf(join(layers, glibcFile)))
    for (const file of [hello.image, etcd.image, ...readdirSync(layers).filter((f) => f.endsWith('.aci'))])
      expect(actoolValidate(file.startsWith('/') ? file : join(layers, file)).status).toBe(0)
  })

  it('runs under the harness from its layers alone, printing what the fat image prints', async () => {
    const dir = makeTempDir()
    try {
      const args = ['-c', 'echo from-sh; python3 -c "import json; print(json.dumps([1]))"; cat /etc/hosts']
      const packages = ['sh', 'busybox', 'python3']
      const image = layered('example.com/bbpython', packages[0]!, packages.slice(1), ['--no-resolv-conf'], dir.path)
      const fat = buildJson([
        'fat',
        'bbpython',
        ...packages,
        '--no-resolv-conf',
        '--engine',
        'native',
        '--out-dir',
        dir.path,
      ])
      const viaLayers = await runAci(image.image, { args, images: join(dir.path, 'layers') })
      const viaFat = await runAci(fat.image, { args })
      expect(viaLayers.stdout).toMatch(/^from-sh\n\[1\]\n127\.0\.0\.1\tlocalhost/)
      expect(viaLayers.stdout).toBe(viaFat.stdout)
      expect(viaLayers.status).toBe(0)
    } finally {
      dir.remove()
    }
  })

  it('running out of disk space mid-layer leaves no layer, whole or half, and the earlier image intact', (context) => {
    const dir = makeTempDir()
    const small = join(dir.path, 'small')
    mkdirSync(small)
    // Room for hello's layers (glibc's is 2 MiB), not for python3's.
    const size = 6 * 1024 * 1024
    const mounted = mountTmpfs(small, `size=${size}`)
    if (!mounted) {
      dir.remove()
      return context.skip('cannot mount a tmpfs here (needs root): no small file system to fill')
    }
    try {
      layered('example.com/app', 'hello', ['hello'], ['--no-resolv-conf'], small)
      const snapshot = () => ({
        top: readdirSync(small).sort(),
        layers: snapshotDir(join(small, 'layers')),
        image: readFileSync(join(small, 'example.com-app.aci')),
      })
      const before = snapshot()
      const run = runCli([
        'layered',
        'example.com/app',
        'python3',
        'python3',
        '--out-dir',
        small,
        '--engine',
        'native',
        '--quiet',
      ])
      expect(run.status).toBe(1)
      expect(run.stderr.trim().split('\n')).toHaveLength(1)
      expect(run.stderr).toMatch(/ENOSPC|no space/i)
      expect(snapshot()).toEqual(before)
    } finally {
      execFileSync('umount', [small])
      dir.remove()
    }
  })

  it('holds the user environment itself, and no store path a layer has', () => {
    const hello = layered('example.com/hello', 'hello', ['hello'])
    const { entries } = listImage(hello.image)
    const stored = new Set(entries.map((entry) => /rootfs\/nix\/store\/([^/ ]+)/.exec(entry)?.[1]).filter(Boolean))
    expect([...stored].every((base) => /-user-environment$|-env-manifest\.nix$/.test(base!))).toBe(true)
    expect(manifestOf(hello.image).dependencies).toHaveLength(2)
  })

  it('rebuilding with one store path changed writes only that layer and the app image', () => {
    const dir = makeTempDir()
    try {
      const outDir = join(dir.path, 'out')
      const build = (greeting: string) => {
        const file = writeShellPackage(
          dir.path,
          'greeter',
          'greeter-1.0',
          `mkdir -p $out/bin; printf '#!/bin/sh\\necho ${greeting}\\n' > $out/bin/greet; chmod +x $out/bin/greet`,
        )
        return layered(
          'example.com/greeter',
          'hello',
          [],
          ['-E', `[ (import <nixpkgs> {}).hello (import ${file}).greeter ]`],
          outDir,
        )
      }
      const first = build('hello')
      const layers = join(outDir, 'layers')
      const before = inodes(layers)
      const imageBefore = statSync(first.image).ino
      const second = build('bonjour')
      expect(second.layers!.written).toHaveLength(1)
      expect(second.layers!.written[0]).toMatch(/greeter-1-0_/)
      expect(changed(before, inodes(layers))).toEqual([second.layers!.written[0], `${second.layers!.written[0]}.id`])
      expect(statSync(second.image).ino).not.toBe(imageBefore)

      // The same inputs again: nothing is written but the app image, with the same bytes.
      const bytes = readFileSync(second.image)
      const settled = inodes(layers)
      const third = build('bonjour')
      expect(third.layers!.written).toEqual([])
      expect(changed(settled, inodes(layers))).toEqual([])
      expect(readFileSync(third.image).equals(bytes)).toBe(true)
    } finally {
      dir.remove()
    }
  })

  it.skipIf(!onPath('actool'))(
    'has actool validate every image it writes, the new layers with the app image, and not the kept ones',
    () => {
      const dir = makeTempDir()
      try {
        // A pass-through in front of the real actool, noting which files each build had it validate.
        const bin = join(dir.path, 'bin')
        const log = join(dir.path, 'actool.log')
        const realActool = execFileSync('sh', ['-c', 'command -v actool'], { encoding: 'utf8' }).trim()
        mkdirSync(bin)
        writeFileSync(
          join(bin, 'actool'),
          `#!/bin/sh\necho "$*" >> ${JSON.stringify(log)}\nexec ${realActool} "$@"\n`,
          { mode: 0o755 },
        )
        const env = fixtureEnv({ PATH: `${bin}:${process.env.PATH}` })
        const outDir = join(dir.path, 'out')
        // The files of the one actool run since the last call, by base name, with its command. Its
        // arguments are what is checked because a layer actool rejects cannot be made here: nix2aci writes none.
        const validatedInOneRun = () => {
          const runs = readFileSync(log, 'utf8').trim().split('\n')
          rmSync(log)
          expect(runs).toHaveLength(1)
          return runs[0]!
            .split(' ')
            .map((word) => basename(word))
            .sort()
        }
        const expected = (written: string[]) => ['validate', 'image.aci', ...written].sort()
        const hello = buildJson(['layered', 'example.com/hello', 'hello', 'hello', '--out-dir', outDir], { env })
        expect(hello.layers!.written.length).toBeGreaterThan(1)
        expect(validatedInOneRun()).toEqual(expected(hello.layers!.written))
        const etcd = buildJson(['layered', 'example.com/etcd', 'etcd', 'etcd', '--out-dir', outDir], { env })
        expect(etcd.layers!.kept.length).toBeGreaterThan(0)
        expect(validatedInOneRun()).toEqual(expected(etcd.layers!.written))
      } finally {
        dir.remove()
      }
    },
  )

  it('gives byte-identical layers and image in a fresh out-dir', () => {
    const again = makeTempDir()
    try {
      const first = layered('example.com/hello', 'hello', ['hello'])
      const second = layered('example.com/hello', 'hello', ['hello'], [], again.path)
      expect(readFileSync(second.image).equals(readFileSync(first.image))).toBe(true)
      for (const file of readdirSync(join(again.path, 'layers')))
        expect(
          readFileSync(join(again.path, 'layers', file)).equals(readFileSync(join(out.path, 'layers', file))),
        ).toBe(true)
    } finally {
      again.remove()
    }
  })

  it('detects a layer file of the right name with the wrong content, and writes it anew', () => {
    const dir = makeTempDir()
    try {
      const first = layered('example.com/hello', 'hello', ['hello'], [], dir.path)
      const glibc = join(
        dir.path,
        'layers',
        first.layers!.written.find((file) => file.includes('glibc'))!,
      )
      const good = readFileSync(glibc)
      const bad = Buffer.from(good)
      bad[bad.length - 100] ^= 0xff
      writeFileSync(glibc, bad)
      const second = layered('example.com/hello', 'hello', ['hello'], [], dir.path)
      expect(second.layers!.written).toEqual([first.layers!.written.find((file) => file.includes('glibc'))])
      expect(readFileSync(glibc).equals(good)).toBe(true)
    } finally {
      dir.remove()
    }
  })

  it('takes a damaged .id record as no record: the layer is written anew, not an unexpected failure', () => {
    const dir = makeTempDir()
    try {
      const first = layered('example.com/hello', 'hello', ['hello'], [], dir.path)
      const glibc = first.layers!.written.find((file) => file.includes('glibc'))!
      writeFileSync(join(dir.path, 'layers', `${glibc}.id`), '{"imageId":')
      const second = layered('example.com/hello', 'hello', ['hello'], [], dir.path)
      expect(second.layers!.written).toEqual([glibc])
    } finally {
      dir.remove()
    }
  })

  it.each([['0'], ['ten'], ['-3']])('refuses --max-layers %s in one line, before any work', (value) => {
    const run = runCli([
      'layered',
      'example.com/hello',
      'hello',
      'hello',
      '--out-dir',
      out.path,
      `--max-layers=${value}`,
    ])
    expect(run.status).toBe(1)
    expect(run.stderr).toBe(`nix2aci: --max-layers: expected a positive whole number, not '${value}'\n`)
  })

  it('groups the closure into at most --max-layers layers', () => {
    const dir = makeTempDir()
    try {
      const result = layered('example.com/etcd', 'etcd', ['etcd'], ['--max-layers', '1'], dir.path)
      const [only] = manifestOf(result.image).dependencies!
      expect(manifestOf(result.image).dependencies).toHaveLength(1)
      expect(only!.imageName).toBe('nix2aci.invalid/store/group-of-2')
    } finally {
      dir.remove()
    }
  })

  it('inspect lists the layers: store paths, sizes, shared or not', () => {
    const dir = makeTempDir()
    try {
      layered('example.com/hello', 'hello', ['hello'], [], dir.path)
      const etcd = layered('example.com/etcd', 'etcd', ['etcd'], [], dir.path)
      const run = runCli(['inspect', '--json', etcd.image])
      expect(run.status).toBe(0)
      const { kind, layers } = JSON.parse(run.stdout) as {
        kind: string
        layers: Array<{ storePaths: string[]; size: number; sharedWith: string[] }>
      }
      expect(kind).toBe('layered')
      const glibc = layers.find((layer) => layer.storePaths.some((path) => path.endsWith('-glibc-2.36')))!
      expect(glibc.sharedWith).toEqual([join(dir.path, 'example.com-hello.aci')])
      expect(glibc.size).toBeGreaterThan(0)
      const own = layers.find((layer) => layer.storePaths.some((path) => path.endsWith('-etcd-3.4.23')))!
      expect(own.sharedWith).toEqual([])
    } finally {
      dir.remove()
    }
  })

  it('validate, run and prune: a missing layer is one line and exit 1; prune keeps what an image needs', () => {
    const dir = makeTempDir()
    try {
      const hello = layered('example.com/hello', 'hello', ['hello'], [], dir.path)
      const etcd = layered('example.com/etcd', 'etcd', ['etcd'], [], dir.path)
      expect(runCli(['validate', hello.image, etcd.image]).status).toBe(0)
      const layers = join(dir.path, 'layers')
      const helloLayer = join(
        layers,
        hello.layers!.written.find((file) => file.includes('hello-1-0'))!,
      )

      // Nothing is unused: prune removes nothing.
      const before = readdirSync(layers).sort()
      const none = runCli(['prune', '--json', '--out-dir', dir.path])
      expect(none.status).toBe(0)
      expect(JSON.parse(none.stdout)).toEqual({ removed: [], bytes: 0 })
      expect(readdirSync(layers).sort()).toEqual(before)

      // Once hello's image is gone, its own layer goes, and glibc's (etcd needs it) stays.
      rmSync(hello.image)
      const pruned = runCli(['prune', '--json', '--out-dir', dir.path])
      expect(JSON.parse(pruned.stdout).removed).toEqual([helloLayer])
      expect(runCli(['validate', etcd.image]).status).toBe(0)

      rmSync(join(layers, etcd.layers!.written[0]!))
      const validate = runCli(['validate', etcd.image])
      expect(validate.status).toBe(1)
      expect(validate.stdout).toContain(
        `layer nix2aci.invalid/store/etcd-3-4-23 is missing: no ${join(layers, etcd.layers!.written[0]!)}`,
      )
      const run = runCli(['run', etcd.image])
      expect(run.status).toBe(1)
      expect(run.stderr.trim().split('\n')).toHaveLength(1)
      expect(run.stderr).toMatch(/^nix2aci: cannot run .*: 1 of its layers missing: /)
    } finally {
      dir.remove()
    }
  })

  it('prune keeps the layers of an image a cut-short commit is about to put in place; the next build puts it there', () => {
    const dir = makeTempDir()
    try {
      const hello = layered('example.com/hello', 'hello', ['hello'], [], dir.path)
      // What a crash after the layers' renames leaves: the layers in place, the image still staged, and
      // the list of renames the commit had written down before it began.
      const staging = '.example.com-hello.building-crash1'
      mkdirSync(join(dir.path, staging))
      renameSync(hello.image, join(dir.path, staging, 'image.aci'))
      const journal = {
        staging,
        renames: [[`${staging}/image.aci`, 'example.com-hello.aci']],
        removals: [],
        profile: 'remove',
      }
      writeFileSync(join(dir.path, '.example.com-hello.commit'), JSON.stringify(journal))
      const layerFiles = () => readdirSync(join(dir.path, 'layers')).sort()
      const before = layerFiles()
      const pruned = runCli(['prune', '--out-dir', dir.path, '--json'])
      expect(pruned.status, pruned.stderr).toBe(0)
      expect(JSON.parse(pruned.stdout)).toMatchObject({ removed: [] })
      expect(layerFiles()).toEqual(before)
      // The next build of the name finishes that commit, then makes its own: every layer is there.
      const again = layered('example.com/hello', 'hello', ['hello'], [], dir.path)
      expect(again.layers!.written).toEqual([])
      expect(runCli(['validate', again.image]).status).toBe(0)
    } finally {
      dir.remove()
    }
  })

  describe('the layers folder lock, taken here as a prune or a commit holds it', () => {
    const holdLayersLock = async (outDir: string) => lockLayersFolder(outDir, (waiting) => waiting, NEVER)
    const start = (args: string[]) => {
      const child = spawn(process.execPath, [join(repoRoot, 'dist/bin/nix2aci.js'), ...args], { env: fixtureEnv() })
      const output = { stdout: '', stderr: '' }
      child.stdout.on('data', (chunk: Buffer) => (output.stdout += chunk.toString()))
      child.stderr.on('data', (chunk: Buffer) => (output.stderr += chunk.toString()))
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
      return { child, output, exited }
    }

    it('makes prune wait, saying so', async () => {
      const dir = makeTempDir()
      try {
        layered('example.com/hello', 'hello', ['hello'], [], dir.path)
        const held = await holdLayersLock(dir.path)
        const prune = start(['prune', '--out-dir', dir.path])
        await expect
          .poll(() => prune.output.stderr, { timeout: 10_000 })
          .toMatch(/^Waiting for another nix2aci to finish with .*layers\n/)
        expect(prune.child.exitCode).toBeNull()
        held.release()
        expect(await prune.exited).toBe(0)
      } finally {
        dir.remove()
      }
    })

    it('makes a layered build wait before it saves, saying so; Ctrl-C then leaves the out-dir as it was', async () => {
      const dir = makeTempDir()
      try {
        layered('example.com/hello', 'hello', ['hello'], [], dir.path)
        const before = readdirSync(dir.path).sort()
        const layersBefore = snapshotDir(join(dir.path, 'layers'))
        const build = (held: { release(): void }) => {
          const run = start(['layered', 'example.com/etcd', 'etcd', 'etcd', '--out-dir', dir.path])
          const waiting = expect
            .poll(() => run.output.stderr, { timeout: 30_000 })
            .toMatch(/Waiting for another nix2aci to finish with .*layers/)
          return { ...run, waiting, held }
        }
        const interrupted = build(await holdLayersLock(dir.path))
        await interrupted.waiting
        expect(existsSync(join(dir.path, 'example.com-etcd.aci'))).toBe(false)
        interrupted.child.kill('SIGINT')
        expect(await interrupted.exited).toBe(130)
        interrupted.held.release()
        expect(readdirSync(dir.path).sort()).toEqual(before)
        expect(snapshotDir(join(dir.path, 'layers'))).toEqual(layersBefore)

        const waited = build(await holdLayersLock(dir.path))
        await waited.waiting
        waited.held.release()
        expect(await waited.exited, waited.output.stderr).toBe(0)
        expect(runCli(['validate', join(dir.path, 'example.com-etcd.aci')]).status).toBe(0)
      } finally {
        dir.remove()
      }
    })
  })

  it('validate refuses a layer whose image ID is not the pinned one', () => {
    const dir = makeTempDir()
    try {
      const hello = layered('example.com/hello', 'hello', ['hello'], [], dir.path)
      const other = layered('example.com/other', 'hello', ['hello'], ['--layer-prefix', 'example.org/nix'], dir.path)
      const layers = join(dir.path, 'layers')
      const ours = hello.layers!.written.find((file) => file.includes('glibc'))!
      const theirs = other.layers!.written.find((file) => file.includes('glibc'))!
      // Same store path, another prefix: another name, so another image ID.
      writeFileSync(join(layers, ours), readFileSync(join(layers, theirs)))
      const validate = runCli(['validate', hello.image])
      expect(validate.status).toBe(1)
      expect(validate.stdout).toMatch(/has image ID sha512-.*, not the pinned sha512-/)
    } finally {
      dir.remove()
    }
  })

  it.skipIf(!onPath('rkt'))('runs under the real rkt: layers fetched, then the image (rkt on PATH)', () => {
    const dir = makeTempDir()
    try {
      const hello = layered('example.com/hello', 'hello', ['hello'], [], dir.path)
      const rktDir = join(dir.path, 'rkt')
      const run = runCli(['run', `--dir=${rktDir}`, hello.image])
      removeRktDir(rktDir)
      expect(run.stdout).toContain('Hello, world!')
      expect(run.status).toBe(0)
    } finally {
      removeRktDir(join(dir.path, 'rkt'))
      dir.remove()
    }
  })
})
