// The fixture package set: Nix lists and installs it, every closure Nix computes is complete
// (the program runs with those store paths and nothing else) and minimal enough that leaving a
// path out breaks it, and the synthetic generator makes closures of exactly the asked size.
import { execFileSync } from 'node:child_process'
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { closureOf, nixBuild, runInClosure, storeName } from './helpers/closure.js'
import { fixtures, makeTempDir, repoRoot } from './helpers/cli.js'

/** `nix-env -qaP` output as attribute path -> name. */
function listing(args: string[], env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const stdout = execFileSync('nix-env', [...args, '-qaP'], { encoding: 'utf8', env, cwd: repoRoot })
  return Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((line) => line.trim().split(/\s+/) as [string, string]),
  )
}

const names = (paths: string[]) => paths.map(storeName).sort()
const without = (paths: string[], left: string) => paths.filter((path) => path !== left)

describe('fixture package set', () => {
  const expected = {
    glibc: 'glibc-2.36',
    busybox: 'busybox-1.35.0',
    etcd: 'etcd-3.4.23',
    python3: 'python3-3.11.2',
    python35: 'python3-3.11.2',
    hello: 'hello-1.0',
  }

  it('nix-env -f fixtures -qaP lists the packages by attribute path and name', () => {
    expect(listing(['-f', fixtures])).toMatchObject(expected)
  })

  it('stands in for <nixpkgs> through NIX_PATH', () => {
    expect(listing(['-f', '<nixpkgs>'], { ...process.env, NIX_PATH: `nixpkgs=${fixtures}` })).toMatchObject(expected)
  })

  it('installs into a profile with nix-env -iA', () => {
    const dir = makeTempDir()
    try {
      const profile = join(dir.path, 'profile')
      execFileSync('nix-env', ['-f', fixtures, '-p', profile, '-iA', 'etcd', 'busybox', 'python35'], {
        stdio: 'ignore',
      })
      const bin = readdirSync(join(profile, 'bin'))
      expect(bin).toEqual(expect.arrayContaining(['etcd', 'sh', 'busybox', 'python3', 'python']))
      expect(execFileSync('nix-env', ['-p', profile, '-q'], { encoding: 'utf8' }).trim().split('\n').sort()).toEqual([
        'busybox-1.35.0',
        'etcd-3.4.23',
        'python3-3.11.2',
      ])
    } finally {
      dir.remove()
    }
  })
})

describe('fixture closures run alone under bubblewrap', () => {
  const pkg: Record<string, string> = {}
  beforeAll(() => {
    const attrs = ['glibc', 'zlib', 'expat', 'busybox', 'etcd', 'python3', 'python35', 'hello']
    nixBuild(attrs).forEach((path, i) => (pkg[attrs[i]!] = path))
  })

  it('python35 is python3', () => {
    expect(pkg.python35).toBe(pkg.python3)
  })

  it('etcd: its closure is etcd and glibc, found by Nix in the relocated binary', () => {
    const closure = closureOf(pkg.etcd!)
    expect(names(closure)).toEqual(['etcd-3.4.23', 'glibc-2.36'])
    const run = runInClosure(closure, [`${pkg.etcd}/bin/etcd`, '--version'])
    expect(run.stderr).toBe('')
    expect(run.status).toBe(0)
    expect(run.stdout).toMatch(/^etcd Version: 3\.4\.23$/m)
  })

  it('etcd fails without glibc', () => {
    const run = runInClosure(without(closureOf(pkg.etcd!), pkg.glibc!), [`${pkg.etcd}/bin/etcd`, '--version'])
    expect(run.status).not.toBe(0)
    expect(run.stdout).toBe('')
    expect(run.stderr).toContain('No such file or directory') // its interpreter, ld-linux-x86-64.so.2
  })

  it('python3: imports json and friends with its own standard library, no PYTHONHOME', () => {
    const closure = closureOf(pkg.python3!)
    expect(names(closure)).toEqual([
      'bzip2-1.0.8',
      'expat-2.5.0',
      'glibc-2.36',
      'libffi-3.4.4',
      'ncurses-6.4',
      'python3-3.11.2',
      'readline-8.2',
      'xz-5.4.1',
      'zlib-1.2.13',
    ])
    const json = runInClosure(closure, [`${pkg.python3}/bin/python3`, '-c', 'import json; print(json.dumps([1]))'])
    expect(json).toMatchObject({ status: 0, stdout: '[1]\n', stderr: '' })

    const modules = 'os, sys, json, re, collections, encodings, zlib, pyexpat, bz2, lzma, ctypes, decimal, readline'
    const imports = runInClosure(closure, [`${pkg.python3}/bin/python`, '-c', `import ${modules}; print(sys.prefix)`])
    expect(imports).toMatchObject({ status: 0, stdout: `${pkg.python3}\n`, stderr: '' })
  })

  it('python3: the interactive prompt starts', () => {
    const run = runInClosure(closureOf(pkg.python3!), [`${pkg.python3}/bin/python3`, '-i'], {
      input: 'print(6 * 7)\n',
      env: { TERM: 'dumb' },
    })
    expect(run.status).toBe(0)
    expect(run.stdout).toBe('42\n')
    expect(run.stderr).toMatch(/^Python 3\.11\.2 /)
    expect(run.stderr).toContain('>>> ')
  })

  it('python3 fails without glibc, zlib or expat', () => {
    const closure = closureOf(pkg.python3!)
    const missing: [string, string][] = [
      [pkg.glibc!, 'No such file or directory'],
      [pkg.zlib!, 'libz.so.1: cannot open shared object file'],
      [pkg.expat!, 'libexpat.so.1: cannot open shared object file'],
    ]
    for (const [left, error] of missing) {
      const run = runInClosure(without(closure, left), [`${pkg.python3}/bin/python3`, '-c', 'print("ok")'])
      expect(run.status, storeName(left)).not.toBe(0)
      expect(run.stdout).toBe('')
      expect(run.stderr).toContain(error)
    }
  })

  it('busybox: static, its closure is itself alone', () => {
    const closure = closureOf(pkg.busybox!)
    expect(closure).toEqual([pkg.busybox])
    expect(runInClosure(closure, [`${pkg.busybox}/bin/sh`, '-c', 'echo ok'])).toMatchObject({
      status: 0,
      stdout: 'ok\n',
    })
    expect(readlinkSync(`${pkg.busybox}/bin/wget`)).toBe('busybox')
  })

  it('hello: compiled against the store glibc, prints Hello, world!', () => {
    const closure = closureOf(pkg.hello!)
    expect(names(closure)).toEqual(['glibc-2.36', 'hello-1.0'])
    expect(runInClosure(closure, [`${pkg.hello}/bin/hello`])).toEqual({
      status: 0,
      stdout: 'Hello, world!\n',
      stderr: '',
    })
    expect(runInClosure(without(closure, pkg.glibc!), [`${pkg.hello}/bin/hello`]).status).not.toBe(0)
  })
})

describe('synthetic closures (fixtures/synthetic.nix)', () => {
  const synthetic = join(fixtures, 'synthetic.nix')
  const tmp = makeTempDir()
  afterAll(() => tmp.remove())

  /** Bytes in the regular files of a store path, each inode counted once (hard links share one). */
  function bytesIn(dir: string, seen = new Set<number>()): number {
    let total = 0
    for (const entry of readdirSync(dir)) {
      const stat = lstatSync(join(dir, entry))
      if (stat.isDirectory()) total += bytesIn(join(dir, entry), seen)
      else if (stat.isFile() && !seen.has(stat.ino)) {
        seen.add(stat.ino)
        total += stat.size
      }
    }
    return total
  }

  const references = (path: string) =>
    execFileSync('nix-store', ['-q', '--references', path], { encoding: 'utf8' }).trim().split('\n').filter(Boolean)

  it('chain: 5 paths, each depending on the next, 4096 bytes each', () => {
    const [top] = nixBuild([], { file: synthetic, args: ['--arg', 'paths', '5', '--arg', 'bytesPerPath', '4096'] })
    expect(storeName(top!)).toBe('synthetic-5')
    const closure = closureOf(top!)
    expect(closure).toHaveLength(5)
    expect(closure.map((path) => references(path).length).sort()).toEqual([0, 1, 1, 1, 1])
    for (const path of closure) expect(bytesIn(path), path).toBe(4096)

    // The files: a runnable script with a hard link, pseudo-random data with a symlink to it.
    expect(execFileSync(join(top!, 'bin/synthetic'), { encoding: 'utf8' })).toMatch(/^synthetic-5: /)
    expect(lstatSync(join(top!, 'bin/synthetic')).ino).toBe(lstatSync(join(top!, 'libexec/synthetic')).ino)
    expect(readlinkSync(join(top!, 'share/synthetic/data'))).toBe('data-0.bin')
    const data = readFileSync(join(top!, 'share/synthetic/data-0.bin'))
    expect(new Set(data).size).toBeGreaterThan(200)
  })

  it('tree: 5 paths in a binary tree, imported from a .nix file, contents differing per path', () => {
    const [top] = nixBuild([], {
      file: '-E',
      args: [`import ${synthetic} { paths = 5; shape = "tree"; bytesPerPath = 3000; filesPerPath = 3; }`],
    })
    const closure = closureOf(top!)
    expect(closure).toHaveLength(5)
    expect(references(top!)).toHaveLength(2)
    expect(closure.map((path) => references(path).length).sort()).toEqual([0, 0, 0, 2, 2])
    const data = new Set<string>()
    for (const path of closure) {
      expect(bytesIn(path), path).toBe(3000)
      expect(readdirSync(join(path, 'share/synthetic')).filter((name) => name.endsWith('.bin'))).toHaveLength(3)
      data.add(readFileSync(join(path, 'share/synthetic/data-0.bin')).toString('base64'))
    }
    expect(data.size).toBe(5)
  })

  it('is listed by nix-env -f fixtures/synthetic.nix --arg paths N -qaP', () => {
    const stdout = execFileSync('nix-env', ['-f', synthetic, '--arg', 'paths', '1000', '-qaP'], { encoding: 'utf8' })
    expect(stdout.trim()).toBe('synthetic-1000')
  })
})
