import { describe, expect, it } from 'vitest'
import {
  closeMatches,
  compareVersions,
  defaultExpression,
  isDerivation,
  isFilePath,
  isFlakeRef,
  looksLikeAttrPath,
  nixOptionArgs,
  matchPackage,
  parseAvailable,
} from '../../src/nix/selectors.js'
import { flakesProblem } from '../../src/nix/inputs.js'

const available = parseAvailable(
  JSON.stringify({
    etcd: { name: 'etcd-3.4.23', pname: 'etcd', version: '3.4.23' },
    etcd_old: { name: 'etcd-2.1.2', pname: 'etcd', version: '2.1.2' },
    python3: { name: 'python3-3.11.2', pname: 'python3', version: '3.11.2' },
    python35: { name: 'python3-3.11.2', pname: 'python3', version: '3.11.2' },
    busybox: { name: 'busybox-1.35.0', pname: 'busybox', version: '1.35.0' },
  }),
)

describe('package selectors', () => {
  it('tells attribute paths from versioned names', () => {
    expect(looksLikeAttrPath('etcd')).toBe(true)
    expect(looksLikeAttrPath('nixos.etcd')).toBe(true)
    expect(looksLikeAttrPath('etcd-3.4.23')).toBe(false)
    expect(looksLikeAttrPath('go1.5-etcd-v2.1.2')).toBe(false)
  })

  it('matches attribute paths, then full names, then the newest of a pname', () => {
    expect(matchPackage('etcd_old', available)).toBe('etcd_old')
    expect(matchPackage('etcd-2.1.2', available)).toBe('etcd_old')
    expect(matchPackage('python3-3.11.2', available)).toBe('python3')
    expect(matchPackage('etcd', available)).toBe('etcd')
    expect(matchPackage('nope', available)).toBeUndefined()
  })

  it('orders versions as Nix does for the common cases', () => {
    expect(compareVersions('3.4.23', '3.4.3')).toBe(1)
    expect(compareVersions('2.1.2', '3.0')).toBe(-1)
    expect(compareVersions('1.0', '1.0')).toBe(0)
  })

  it('suggests close matches for a typo', () => {
    expect(closeMatches('etdc', available)[0]).toMatch(/^etcd/)
    expect(closeMatches('pyhton3', available)[0]).toMatch(/^python3/)
    expect(closeMatches('zzzzzzzz', available)).toEqual([])
  })

  it('reads <nixpkgs> from NIX_PATH, else leaves nix-env its default', () => {
    expect(defaultExpression('./my.nix', 'nixpkgs=/x')).toBe('./my.nix')
    expect(defaultExpression(undefined, 'nixpkgs=/src/fixtures')).toBe('<nixpkgs>')
    expect(defaultExpression(undefined, '/nix/var/nix/profiles/per-user/root/channels/nixpkgs')).toBe('<nixpkgs>')
    expect(defaultExpression(undefined, 'other=/x')).toBeUndefined()
    expect(defaultExpression(undefined, undefined)).toBeUndefined()
  })
})

describe('the ways Nix names packages', () => {
  it('tells flake references, files, derivations and selectors apart', () => {
    for (const ref of ['.#hello', 'path:./fixtures#hello', 'git+file:///src?dir=fixtures#hello', 'path:./fixtures'])
      expect(isFlakeRef(ref), ref).toBe(true)
    for (const other of ['hello', 'nixos.etcd', 'etcd-3.4.23', './result', '/nix/store/abc-x#y'])
      expect(isFlakeRef(other), other).toBe(false)
    expect(isFilePath('./result')).toBe(true)
    expect(isFilePath('/nix/store/abc-hello')).toBe(false)
    expect(isFilePath('hello')).toBe(false)
    expect(isDerivation('/nix/store/abc-hello-1.0.drv')).toBe(true)
    expect(isDerivation('/nix/store/abc-multi-1.drv!bin')).toBe(true)
    expect(isDerivation('/nix/store/abc-hello-1.0')).toBe(false)
  })

  it('spells the Nix options as Nix takes them, without --arg for flakes and with only --option for builds', () => {
    const options = {
      include: ['fx=./f'],
      arg: { a: '1' },
      argstr: { s: 'v' },
      option: { 'max-jobs': '2' },
      showTrace: true,
    }
    expect(nixOptionArgs(options)).toEqual([
      ...['-I', 'fx=./f', '--arg', 'a', '1', '--argstr', 's', 'v', '--option', 'max-jobs', '2', '--show-trace'],
    ])
    expect(nixOptionArgs(options, 'flake')).toEqual(['-I', 'fx=./f', '--option', 'max-jobs', '2', '--show-trace'])
    expect(nixOptionArgs(options, 'build')).toEqual(['--option', 'max-jobs', '2'])
  })
})

describe('flakes need Nix 2.4', () => {
  it('says which Nix is there when it is older or has no nix command', () => {
    expect(flakesProblem('nix (Nix) 2.8.0\n')).toBeUndefined()
    expect(flakesProblem('nix (Nix) 2.4\n')).toBeUndefined()
    expect(flakesProblem('nix (Nix) 2.3.16\n')).toBe('this is nix (Nix) 2.3.16')
    expect(flakesProblem(undefined)).toBe("this Nix has no 'nix' command")
  })
})
