import { describe, expect, it } from 'vitest'
import { MANIFEST_OPTIONS } from '../../src/plan/app-options.js'
import { fieldName } from '../../src/plan/options.js'
import { parseSpec } from '../../src/pipeline/spec.js'

const defaults = { outDir: '/out' }
const image = { name: 'x', binary: 'hello', packages: ['hello'] }
const parse = (fields: Record<string, unknown>) =>
  parseSpec(JSON.stringify({ images: [{ ...image, ...fields }] }), '/s/spec.json', defaults)[0]!

describe('spec fields, from the option table', () => {
  it('takes every manifest option under its camelCase name', () => {
    const fields = Object.keys(MANIFEST_OPTIONS).map(fieldName)
    expect(fields).toContain('supplementaryGid')
    for (const field of fields)
      expect(parse({ [field]: 0 })).toMatchObject({
        error: expect.stringMatching(new RegExp(`images\\[0\\]\\.${field}: must be `)),
      })
  })

  it.each([
    [{ label: 'a=b' }, 'images[0].label: must be a list of strings'],
    [{ supplementaryGid: ['10'] }, 'images[0].supplementaryGid: must be a list of numbers'],
    [{ exec: ['sh'] }, 'images[0].exec: must be a string'],
    [{ sign: 'yes' }, 'images[0].sign: must be true or false'],
    [{ engine: 'docker' }, 'images[0].engine: must be one of auto, acbuild, native'],
    [{ key: 'k' }, 'images[0].key: needs "sign": true'],
    [
      { supplementaryGid: [4294967295] },
      "images[0]: --supplementary-gid '4294967295': must be a whole number from 0 to 4294967294",
    ],
    [
      { binary: 'bin/../../usr/bin/env' },
      "images[0].binary: binary 'bin/../../usr/bin/env' leads out of the profile: a path with a / is taken inside the profile",
    ],
    [{ colour: 'red' }, "images[0]: unknown field 'colour'"],
  ])('refuses %j, naming the field', (fields, error) => {
    expect(parse(fields)).toEqual({ name: 'x', error: `/s/spec.json: ${error}` })
  })

  it('reads the options with their defaults', () => {
    const entry = parse({ execArgs: ['--x'], sign: true, key: 'k', resolvConf: false, file: 'pkgs' })
    expect(entry).toMatchObject({
      request: {
        engine: 'auto',
        compression: 'gzip',
        resolvConf: false,
        validate: true,
        sign: { key: 'k' },
        file: '/s/pkgs',
      },
    })
    expect('request' in entry && entry.request.app.execArgs).toEqual(['--x'])
  })
})

describe('layered images in a spec', () => {
  it('takes "kind": "layered" with maxLayers and layerPrefix, and their defaults', () => {
    expect(parse({ kind: 'layered', maxLayers: 3, layerPrefix: 'example.com/nix' })).toMatchObject({
      request: { kind: 'layered', layers: { maxLayers: 3, prefix: 'example.com/nix' } },
    })
    expect(parse({ kind: 'layered' })).toMatchObject({
      request: { layers: { maxLayers: 20, prefix: 'nix2aci.invalid/store' } },
    })
  })

  it.each([
    [{ kind: 'layered', maxLayers: 0 }, "images[0]: --max-layers: expected a positive whole number, not '0'"],
    [{ kind: 'layered', maxLayers: '5' }, 'images[0].maxLayers: must be a number'],
    [{ kind: 'fat', maxLayers: 5 }, 'images[0].maxLayers: only a "layered" image has layers'],
    [{ kind: 'squashed' }, 'images[0].kind: must be "thin", "fat" or "layered"'],
  ])('refuses %j, naming the field', (fields, error) => {
    expect(parse(fields)).toEqual({ name: 'x', error: `/s/spec.json: ${error}` })
  })
})
