// The spec file `nix2aci build` reads, JSON or Nix: images to build, each field checked with an
// error naming it.
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { evaluateSpecFile } from '../nix/spec-file.js'
import { NO_NIX_OPTIONS, isFilePath, type NixOptions } from '../nix/selectors.js'
import { checkBinary, parseAppOptions } from '../plan/app-options.js'
import { fieldName, unmetNeed, type OptionDeclaration, type OptionTable, type OptionValues } from '../plan/options.js'
import { checkImageName, type ImageKind } from '../plan/plan.js'
import { UserError, messageOf } from '../util/errors.js'
import type { BuildRequest } from './build-image.js'
import { IMAGE_OPTIONS, LAYER_OPTIONS, layerOptionsOf, packageInputsOf } from './options.js'
import { imageFileBase } from './outputs.js'

/** Either a request ready to build, or why the entry cannot be built. */
export type SpecEntry = { name: string; request: BuildRequest } | { name: string; error: string }

/** The image options, and what a spec says after `--` on the command line. */
const SPEC_OPTIONS = {
  ...IMAGE_OPTIONS,
  ...LAYER_OPTIONS,
  'exec-args': { type: 'strings', describe: 'arguments appended to the exec' },
} as const satisfies OptionTable
type SpecOptionValues = OptionValues<typeof SPEC_OPTIONS>

/** The command line's positional arguments, and `kind`, its command. */
const POSITIONAL_FIELDS = ['name', 'kind', 'binary', 'packages']
const KNOWN = new Set<string>([...POSITIONAL_FIELDS, ...Object.keys(SPEC_OPTIONS).map(fieldName)])

export interface SpecDefaults {
  outDir: string
  file?: string
  /** The command line's -I, --arg, ...: for the evaluation of a Nix spec, and under each image's own. */
  nixOptions?: NixOptions
}

/** A spec is JSON, or Nix when its name ends in `.nix`. */
type SpecLanguage = 'json' | 'nix'

/** Reads and checks the spec file at `path`; a Nix one is evaluated first, once, by Nix. */
export async function loadSpec(path: string, defaults: SpecDefaults, signal: AbortSignal): Promise<SpecEntry[]> {
  if (path.endsWith('.nix')) {
    const value = await evaluateSpecFile(path, defaults.nixOptions ?? NO_NIX_OPTIONS, signal)
    return checkSpec(value, path, defaults, 'nix')
  }
  const text = await readFile(path, 'utf8').catch(() => {
    throw new UserError(`cannot read the spec file ${path}`)
  })
  return parseSpec(text, path, defaults)
}

/** Paths in a spec are relative to the spec file; `<nixpkgs>`-style lookups stay as they are. */
function relativeTo(baseDir: string, path: string): string {
  return path.startsWith('<') ? path : resolve(baseDir, path)
}

/** Reads a JSON spec's text. */
export function parseSpec(text: string, source: string, defaults: SpecDefaults): SpecEntry[] {
  let spec: unknown
  try {
    spec = JSON.parse(text)
  } catch (error) {
    throw new UserError(`${source} is not JSON: ${messageOf(error)}`)
  }
  return checkSpec(spec, source, defaults, 'json')
}

/** Checks a spec's value. A spec that is not an object with an `images` list is refused whole. */
function checkSpec(spec: unknown, source: string, defaults: SpecDefaults, language: SpecLanguage): SpecEntry[] {
  const baseDir = dirname(resolve(source))
  if (!isObject(spec) || !Array.isArray(spec.images)) {
    const expected = language === 'json' ? '{"images": [ ... ]}' : '{ images = [ ... ]; }'
    throw new UserError(`${source}: expected ${expected} (an object with a list of images)`)
  }
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
      const imageDefaults = { ...defaults, outDir, ...(file !== undefined ? { file } : {}) }
      return { name, request: parseImage(image, where, baseDir, imageDefaults, language) }
    } catch (error) {
      if (!(error instanceof UserError)) throw error
      return { name, error: error.message }
    }
  })
}

function parseImage(
  image: unknown,
  where: string,
  baseDir: string,
  defaults: SpecDefaults,
  language: SpecLanguage,
): BuildRequest {
  if (!isObject(image)) throw new UserError(`${where}: expected an object`)
  for (const key of Object.keys(image)) if (!KNOWN.has(key)) throw new UserError(`${where}: unknown field '${key}'`)
  const name = requiredString(image, 'name', where)
  within(`${where}.name`, () => checkImageName(name))
  const kind = image.kind ?? 'thin'
  if (kind !== 'thin' && kind !== 'fat' && kind !== 'layered')
    throw new UserError(`${where}.kind: must be "thin", "fat" or "layered"`)
  const binary = requiredString(image, 'binary', where)
  within(`${where}.binary`, () => checkBinary(binary))
  const values = optionValues(image, where)
  // With `attr` or `expr`, the packages may be left out, as on the command line.
  const named = values.attr !== undefined || values.expr !== undefined
  const packages = image.packages ?? (named ? [] : undefined)
  const given = language === 'json' ? jsonPackages(packages, where) : nixPackages(packages, where)
  // An out-link (`./result`) is a path like any other in a spec: relative to the spec file.
  const packageList = given.map((p) => (isFilePath(p) ? relativeTo(baseDir, p) : p))
  if (packageList.length === 0 && !named)
    throw new UserError(
      `${where}.packages: must be a non-empty list of ${language === 'json' ? 'strings' : 'packages'}`,
    )
  if (values.include !== undefined) values.include = values.include.map((entry) => includeRelativeTo(baseDir, entry))
  const unmet = unmetNeed(SPEC_OPTIONS, values)
  // As on the command line: a key alone would silently sign nothing.
  if (unmet) throw new UserError(`${where}.${fieldName(unmet[0])}: needs "${fieldName(unmet[1])}": true`)
  const app = within(where, () => parseAppOptions(values))
  if (kind !== 'layered')
    for (const option of Object.keys(LAYER_OPTIONS))
      if (values[fieldName(option) as keyof SpecOptionValues] !== undefined)
        throw new UserError(`${where}.${fieldName(option)}: only a "layered" image has layers`)
  const layers = kind === 'layered' ? within(where, () => layerOptionsOf(values)) : undefined
  const file = values.file !== undefined ? relativeTo(baseDir, values.file) : defaults.file
  return {
    kind: kind as ImageKind,
    name,
    binary,
    ...packageInputsOf(packageList, values, defaults.nixOptions),
    packages: packageList,
    outDir: defaults.outDir,
    ...(file !== undefined ? { file } : {}),
    engine: values.engine ?? SPEC_OPTIONS.engine.default,
    compression: values.compression ?? SPEC_OPTIONS.compression.default,
    resolvConf: values.resolvConf ?? SPEC_OPTIONS['resolv-conf'].default,
    validate: values.validate ?? SPEC_OPTIONS.validate.default,
    app,
    ...(values.sign === true ? { sign: values.key !== undefined ? { key: values.key } : {} } : {}),
    ...(layers ? { layers } : {}),
  }
}

function jsonPackages(packages: unknown, where: string): string[] {
  if (!Array.isArray(packages) || !packages.every((p) => typeof p === 'string'))
    throw new UserError(`${where}.packages: must be a non-empty list of strings`)
  return packages as string[]
}

/** `-I PATH` and `-I NAME=PATH` take paths relative to the spec file too; URLs stay as they are. */
function includeRelativeTo(baseDir: string, entry: string): string {
  const at = entry.indexOf('=')
  const [prefix, path] = at < 0 ? ['', entry] : [entry.slice(0, at + 1), entry.slice(at + 1)]
  return path.includes('://') ? entry : `${prefix}${relativeTo(baseDir, path)}`
}

/**
 * A Nix spec's packages are packages (`pkgs.etcd`), each installed as the outputs it asks for
 * (`X.drv!out`), or strings as in a JSON spec.
 */
function nixPackages(packages: unknown, where: string): string[] {
  if (!Array.isArray(packages)) throw new UserError(`${where}.packages: must be a non-empty list of packages`)
  return packages.flatMap((p: unknown, i) => {
    if (typeof p === 'string') return [p]
    if (isObject(p) && typeof p.drvPath === 'string' && Array.isArray(p.outputs))
      return p.outputs.map((output) => `${String(p.drvPath)}!${String(output)}`)
    const type = isObject(p) && typeof p.notAPackage === 'string' ? p.notAPackage : typeof p
    throw new UserError(`${where}.packages[${i}]: must be a package (a derivation) or a string, got ${type}`)
  })
}

/** The option fields an image gives, each checked to be of its option's type. */
function optionValues(image: Record<string, unknown>, where: string): SpecOptionValues {
  const values: Record<string, unknown> = {}
  for (const [option, declaration] of Object.entries(SPEC_OPTIONS)) {
    const field = fieldName(option)
    const value = image[field]
    if (value === undefined) continue
    const problem = typeProblem(declaration, value)
    if (problem) throw new UserError(`${where}.${field}: ${problem}`)
    values[field] = value
  }
  return values as SpecOptionValues
}

function typeProblem(declaration: OptionDeclaration, value: unknown): string | undefined {
  const isListOf = (type: string) => Array.isArray(value) && value.every((item) => typeof item === type)
  switch (declaration.type) {
    case 'string':
      return typeof value === 'string' ? undefined : 'must be a string'
    case 'strings':
      return isListOf('string') ? undefined : 'must be a list of strings'
    case 'numbers':
      return isListOf('number') ? undefined : 'must be a list of numbers'
    case 'number':
      return typeof value === 'number' ? undefined : 'must be a number'
    case 'pairs':
      return isObject(value) && Object.values(value).every((item) => typeof item === 'string')
        ? undefined
        : 'must be an object of strings ({"NAME": "VALUE"})'
    case 'boolean':
      return typeof value === 'boolean' ? undefined : 'must be true or false'
    case 'choice':
      return declaration.choices.includes(value as string)
        ? undefined
        : `must be one of ${declaration.choices.join(', ')}`
  }
}

/** Runs a check whose error then says where in the spec it applies. */
function within<T>(where: string, check: () => T): T {
  try {
    return check()
  } catch (error) {
    if (error instanceof UserError) throw new UserError(`${where}: ${error.message}`)
    throw error
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
