import { describe, expect, it } from 'vitest'
import {
  closeMatches,
  compareVersions,
  defaultExpression,
  looksLikeAttrPath,
  matchPackage,
  parseAvailable,
} from '../../src/nix/selectors.js'

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
