import { describe, expect, it } from 'vitest'
import {
  groupLayers,
  imageOwnPaths,
  layerFileName,
  parseMaxLayers,
  planLayers,
  DEFAULT_LAYER_PREFIX,
} from '../../src/plan/layers.js'
import { acIdentifierProblem } from '../../src/plan/appc.js'

const at = (base: string) => `/nix/store/${base}`
const glibc = at('y8x6lhm07gp18ra12ji5qhllfn31a7dc-glibc-2.36')
const zlib = at('aaaa6lhm07gp18ra12ji5qhllfn31a7dc-zlib-1.2.13')
const openssl = at('bbbb6lhm07gp18ra12ji5qhllfn31a7dc-openssl-3.0')
const app = at('cccc6lhm07gp18ra12ji5qhllfn31a7dc-app-1.0')
const tool = at('dddd6lhm07gp18ra12ji5qhllfn31a7dc-tool-1.0')

const graph = new Map<string, string[]>([
  [glibc, [glibc]],
  [zlib, [glibc]],
  [openssl, [glibc, zlib]],
  [app, [glibc, zlib, openssl]],
  [tool, [glibc]],
])
const options = { storeDir: '/nix/store', prefix: DEFAULT_LAYER_PREFIX, maxLayers: 20, os: 'linux', arch: 'amd64' }

describe('groupLayers', () => {
  it('gives each path a layer of its own while they fit', () => {
    expect(groupLayers(graph, 5)).toEqual([[zlib], [openssl], [app], [tool], [glibc]].sort())
  })

  it('gives the most referenced paths their own layers, and the rest the last one', () => {
    // glibc is referred to by 4 paths, zlib by 2, openssl by 1; app and tool by none.
    expect(groupLayers(graph, 3)).toEqual([[glibc], [zlib], [app, openssl, tool].sort()])
    expect(groupLayers(graph, 1)).toEqual([[...graph.keys()].sort()])
  })

  it("gives the image's own packages layers of their own before the popular paths", () => {
    // tool is a leaf no path refers to: without this it would share the last layer.
    expect(groupLayers(graph, 3, [tool])).toEqual([[tool], [glibc], [app, openssl, zlib].sort()])
  })

  it('gives the same layers whatever order the graph lists', () => {
    const reversed = new Map([...graph].reverse())
    expect(groupLayers(reversed, 3)).toEqual(groupLayers(graph, 3))
  })
})

describe('planLayers', () => {
  it('names a layer after its package, with the store hash as version, valid appc names', () => {
    const [first] = planLayers(new Map([[glibc, []]]), options)
    expect(first!.name).toBe('nix2aci.invalid/store/glibc-2-36')
    expect(first!.labels).toEqual([
      { name: 'version', value: 'y8x6lhm07gp18ra12ji5qhllfn31a7dc' },
      { name: 'os', value: 'linux' },
      { name: 'arch', value: 'amd64' },
    ])
    expect(first!.file).toBe('nix2aci.invalid-store-glibc-2-36_y8x6lhm07gp18ra12ji5qhllfn31a7dc.aci')
    for (const layer of planLayers(graph, { ...options, maxLayers: 2 }))
      expect(acIdentifierProblem(layer.name)).toBeUndefined()
  })

  it('names a group by a digest of its paths: the same paths, the same layer', () => {
    const [, group] = planLayers(graph, { ...options, maxLayers: 2 })
    expect(group!.storePaths).toHaveLength(4)
    expect(group!.name).toBe('nix2aci.invalid/store/group-of-4')
    expect(planLayers(new Map([...graph].reverse()), { ...options, maxLayers: 2 })[1]).toEqual(group)
    expect(group!.file).toBe(layerFileName(group!.name, group!.labels[0]!.value))
  })

  it('keeps the user environment and its manifest out of the layers', () => {
    const env = at('eeee6lhm07gp18ra12ji5qhllfn31a7dc-user-environment')
    const manifest = at('ffff6lhm07gp18ra12ji5qhllfn31a7dc-env-manifest.nix')
    expect(imageOwnPaths(env, new Map([[env, [manifest, app]]]))).toEqual([env, manifest])
  })
})

describe('parseMaxLayers', () => {
  it('takes a positive whole number and refuses anything else in one line', () => {
    expect(parseMaxLayers('7')).toBe(7)
    expect(parseMaxLayers(3)).toBe(3)
    for (const bad of ['0', '-1', 'ten', '2.5', ''])
      expect(() => parseMaxLayers(bad)).toThrow(/^--max-layers: expected a positive whole number/)
  })
})
