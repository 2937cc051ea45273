import { describe, expect, it } from 'vitest'
import { discoveryPage, imageFileIn, pageFolders, parseUrlPrefix, pathUnderPrefix } from '../../src/aci/discovery.js'

describe('the discovery tree', () => {
  it('takes the URL prefix as scheme and name prefix, and refuses what a name cannot reach', () => {
    expect(parseUrlPrefix('https://example.com/apps/')).toEqual({ scheme: 'https', namePrefix: 'example.com/apps' })
    expect(parseUrlPrefix('http://localhost')).toEqual({ scheme: 'http', namePrefix: 'localhost' })
    expect(() => parseUrlPrefix('http://localhost:8080/apps')).toThrow(/no port/)
    expect(() => parseUrlPrefix('ftp://localhost/apps')).toThrow(/http:\/\/ or https:\/\//)
    expect(() => parseUrlPrefix('localhost/apps')).toThrow(/not a URL/)
  })

  it('files a name below the prefix at its own path, and nothing outside it', () => {
    expect(pathUnderPrefix('localhost/apps/etcd', 'localhost/apps')).toBe('etcd')
    expect(pathUnderPrefix('localhost/appsx/etcd', 'localhost/apps')).toBeUndefined()
    expect(pathUnderPrefix('localhost/apps', 'localhost/apps')).toBeUndefined()
    expect(imageFileIn('layers/glibc-2-36', { version: 'y8x', os: 'linux', arch: 'amd64' })).toBe(
      'layers/glibc-2-36-y8x-linux-amd64.aci',
    )
    expect(pageFolders(['etcd', 'layers/glibc-2-36'])).toEqual(['', 'etcd', 'layers', 'layers/glibc-2-36'])
  })

  it("gives the prefix's templates, the key's only when there is one", () => {
    const prefix = parseUrlPrefix('https://example.com/apps')
    const page = discoveryPage(prefix, true, ['https://example.com/apps/etcd-1-linux-amd64.aci'])
    expect(page).toContain(
      '<meta name="ac-discovery" content="example.com/apps https://{name}-{version}-{os}-{arch}.{ext}">',
    )
    expect(page).toContain(
      '<meta name="ac-discovery-pubkeys" content="example.com/apps https://example.com/apps/pubkeys.gpg">',
    )
    expect(page).toContain('>etcd-1-linux-amd64.aci</a>')
    expect(discoveryPage(prefix, false, [])).not.toContain('ac-discovery-pubkeys')
  })
})
