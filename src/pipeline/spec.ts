// The spec file `nix2aci build` reads: images to build, each field checked with an error naming it.
import { dirname, resolve } from 'node:path'
import { COMPRESSIONS, DEFAULT_COMPRESSION, type Compression } from '../aci/compression.js'
import { DEFAULT_ENGINE, ENGINES, type EngineChoice } from '../engines/engine.js'
import { parseAppOptions, type AppOptionInput } from '../plan/app-options.js'
import { checkImageName, type ImageKind } from '../plan/plan.js'
import { UserError, messageOf } from '../util/errors.js'
import { imageFileBase, type BuildRequest } from './build-image.js'

/** Either a request ready to build, or why the entry cannot be built. */
export type SpecEntry = { name: string; request: BuildRequest } | { name: string; error: string }

const STRING_LISTS = ['label', 'env', 'port', 'mount', 'volume', 'isolator', 'annotation', 'execArgs'] as const
const APP_STRINGS = ['exec', 'imageVersion', 'user', 'group', 'workingDir', 'preStart', 'postStop'] as const
const STRINGS = [...APP_STRINGS, 'file', 'key'] as const
const BOOLEANS = ['resolvConf', 'validate', 'sign'] as const
const KNOWN = new Set<string>([
  'name',
  'kind',
  'binary',
  'packages',
  'engine',
  'compression',
  'supplementaryGid',
  ...STRING_LISTS,
  ...STRINGS,
  ...BOOLEANS,
])

export interface SpecDefaults {
  outDir: string
  file?: string
}

/** Paths in a spec are relative to the spec file; `<nixpkgs>`-style lookups stay as they are. */
function relativeTo(baseDir: string, path: string): string {
  return path.startsWith('<') ? path : resolve(baseDir, path)
}

/** Reads a spec's text. A spec that is not an object with an `images` list is refused whole. */
export function parseSpec(text: string, source: string, defaults: SpecDefaults): SpecEntry[] {
  const baseDir = dirname(resolve(source))
  let spec: unknown
  try {
    spec = JSON.parse(text)
  } catch (error) {
    throw new UserError(`${source} is not JSON: ${messageOf(error)}`)
  }
  if (!isObject(spec) || !Array.isArray(spec.images))
    throw new UserError(`${source}: expected {"images": [ ... ]} (an object with a list of images)`)
  for (const key of Object.keys(spec)) {
    if (!['images', 'outDir', 'file'].includes(key)) throw new UserError(`${source}: unknown field '${key}'`)
  }
  const specOutDir = optionalString(spec, 'outDir', source)
  const specFile = optionalString(spec, 'file', source)
  const outDir = specOutDir !== undefined ? relativeTo(baseDir, specOutDir) : defaults.outDir
  const file = specFile !== undefined ? relativeTo(baseDir, specFile) : defaults.file
  const firstWithName = new Map<string, number>()
  return spec.images.map((image, i) => {
    const where = `${source}: images[${i}]`
    const name = isObject(image) && typeof image.name === 'string' ? image.name : `#${i}`
    try {
      // Builds run side by side: two of one name would write the same files.
      const fileBase = imageFileBase(name)
      const first = firstWithName.get(fileBase)
      if (first !== undefined) throw new UserError(`${where}.name: images[${first}] already writes ${fileBase}.aci`)
      firstWithName.set(fileBase, i)
      return { name, request: parseImage(image, where, baseDir, { outDir, ...(file !== undefined ? { file } : {}) }) }
    } catch (error) {
      if (!(error instanceof UserError)) throw error
      return { name, error: error.message }
    }
  })
}

function parseImage(image: unknown, where: string, baseDir: string, defaults: SpecDefaults): BuildRequest {
  if (!isObject(image)) throw new UserError(`${where}: expected an object`)
  for (const key of Object.keys(image)) if (!KNOWN.has(key)) throw new UserError(`${where}: unknown field '${key}'`)
  const name = requiredString(image, 'name', where)
  try {
    checkImageName(name)
  } catch (error) {
    throw new UserError(`${where}.name: ${messageOf(error)}`)
  }
  const kind = image.kind ?? 'thin'
  if (kind !== 'thin' && kind !== 'fat') throw new UserError(`${where}.kind: must be "thin" or "fat"`)
  const binary = requiredString(image, 'binary', where)
  const packages = image.packages
  if (!Array.isArray(packages) || packages.length === 0 || !packages.every((p) => typeof p === 'string'))
    throw new UserError(`${where}.packages: must be a non-empty list of strings`)
  const engine = oneOf(image, 'engine', ENGINES, where) ?? DEFAULT_ENGINE
  const compression = oneOf(image, 'compression', COMPRESSIONS, where) ?? DEFAULT_COMPRESSION
  const input: AppOptionInput = {}
  for (const key of STRING_LISTS) {
    const value = image[key]
    if (value === undefined) continue
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string'))
      throw new UserError(`${where}.${key}: must be a list of strings`)
    input[key] = value as string[]
  }
  for (const key of APP_STRINGS) {
    const value = optionalString(image, key, where)
    if (value !== undefined) input[key] = value
  }
  if (image.supplementaryGid !== undefined) {
    if (!Array.isArray(image.supplementaryGid) || !image.supplementaryGid.every((g) => typeof g === 'number'))
      throw new UserError(`${where}.supplementaryGid: must be a list of numbers`)
    input.supplementaryGid = image.supplementaryGid as number[]
  }
  for (const key of BOOLEANS) {
    if (image[key] !== undefined && typeof image[key] !== 'boolean')
      throw new UserError(`${where}.${key}: must be true or false`)
  }
  let app
  try {
    app = parseAppOptions(input)
  } catch (error) {
    throw new UserError(`${where}: ${messageOf(error)}`)
  }
  const imageFile = optionalString(image, 'file', where)
  const file = imageFile !== undefined ? relativeTo(baseDir, imageFile) : defaults.file
  const key = optionalString(image, 'key', where)
  // As on the command line (--key implies --sign): a key alone would silently sign nothing.
  if (key !== undefined && image.sign !== true) throw new UserError(`${where}.key: needs "sign": true`)
  return {
    kind: kind as ImageKind,
    name,
    binary,
    packages: packages as string[],
    outDir: defaults.outDir,
    ...(file !== undefined ? { file } : {}),
    engine: engine as EngineChoice,
    compression: compression as Compression,
    resolvConf: image.resolvConf !== false,
    validate: image.validate !== false,
    app,
    ...(image.sign === true ? { sign: key !== undefined ? { key } : {} } : {}),
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function requiredString(object: Record<string, unknown>, key: string, where: string): string {
  const value = object[key]
  if (typeof value !== 'string' || value === '') throw new UserError(`${where}.${key}: required, a string`)
  return value
}

function optionalString(object: Record<string, unknown>, key: string, where: string): string | undefined {
  const value = object[key]
  if (value !== undefined && typeof value !== 'string') throw new UserError(`${where}.${key}: must be a string`)
  return value
}

function oneOf(
  object: Record<string, unknown>,
  key: string,
  choices: readonly string[],
  where: string,
): string | undefined {
  const value = object[key]
  if (value !== undefined && (typeof value !== 'string' || !choices.includes(value)))
    throw new UserError(`${where}.${key}: must be one of ${choices.join(', ')}`)
  return value as string | undefined
}
