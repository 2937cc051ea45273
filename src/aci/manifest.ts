// The appc image manifest (appc spec 0.8, schema/image.go): its type, which the plan produces and
// the readers take, and the check that a manifest read from an image has that shape.
import { UserError } from '../util/errors.js'

export interface NameValue {
  name: string
  value: string
}

export interface MountPoint {
  name: string
  path: string
  readOnly?: boolean
}

export interface Port {
  name: string
  protocol: string
  port: number
  count?: number
  socketActivated?: boolean
}

export interface Isolator {
  name: string
  value: unknown
}

export interface EventHandler {
  name: string
  exec: string[]
}

export interface App {
  exec?: string[]
  eventHandlers?: EventHandler[]
  user: string
  group: string
  supplementaryGIDs?: number[]
  workingDirectory?: string
  environment?: NameValue[]
  mountPoints?: MountPoint[]
  ports?: Port[]
  isolators?: Isolator[]
}

export interface Dependency {
  imageName: string
  imageID?: string
  labels?: NameValue[]
  size?: number
}

export interface ImageManifest {
  acKind: 'ImageManifest'
  acVersion: string
  name: string
  labels?: NameValue[]
  app?: App
  annotations?: NameValue[]
  dependencies?: Dependency[]
  pathWhitelist?: string[]
}

type Check = (value: unknown) => boolean
const isString: Check = (value) => typeof value === 'string'
const isNumber: Check = (value) => typeof value === 'number' && Number.isFinite(value)
const isBoolean: Check = (value) => typeof value === 'boolean'
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** An object whose listed fields, when present (or always, for `required`), pass their checks. */
function shape(fields: Record<string, Check>, required: string[] = []): (value: unknown, at: string) => string[] {
  return (value, at) => {
    if (!isObject(value)) return [`${at} is not an object`]
    return [
      ...required.filter((key) => value[key] === undefined).map((key) => `${at}.${key} is missing`),
      ...Object.entries(fields)
        .filter(([key, check]) => value[key] !== undefined && !check(value[key]))
        .map(([key]) => `${at}.${key} has the wrong type`),
    ]
  }
}

function listOf(item: Check): Check {
  return (value) => Array.isArray(value) && value.every(item)
}

const fits =
  (check: (value: unknown, at: string) => string[]): Check =>
  (value) =>
    check(value, '').length === 0
const nameValue = fits(shape({ name: isString, value: isString }, ['name', 'value']))
const appShape = shape(
  {
    exec: listOf(isString),
    eventHandlers: listOf(fits(shape({ name: isString, exec: listOf(isString) }, ['name']))),
    user: isString,
    group: isString,
    supplementaryGIDs: listOf(isNumber),
    workingDirectory: isString,
    environment: listOf(nameValue),
    mountPoints: listOf(fits(shape({ name: isString, path: isString, readOnly: isBoolean }, ['name', 'path']))),
    ports: listOf(
      fits(
        shape({ name: isString, protocol: isString, port: isNumber, count: isNumber, socketActivated: isBoolean }, [
          'name',
          'protocol',
          'port',
        ]),
      ),
    ),
    isolators: listOf(fits(shape({ name: isString }, ['name']))),
  },
  ['user', 'group'],
)
const manifestShape = shape(
  {
    acVersion: isString,
    name: isString,
    labels: listOf(nameValue),
    annotations: listOf(nameValue),
    dependencies: listOf(
      fits(shape({ imageName: isString, imageID: isString, labels: listOf(nameValue), size: isNumber }, ['imageName'])),
    ),
    pathWhitelist: listOf(isString),
  },
  ['acKind', 'acVersion', 'name'],
)

/** Parses a manifest read from `file`; JSON that is not an ImageManifest of this shape is the user's to fix. */
export function parseManifest(text: string, file: string): ImageManifest {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new UserError(`${file} has a manifest that is not JSON: ${(error as Error).message}`)
  }
  const problems = manifestShape(value, 'manifest')
  if (isObject(value)) {
    if (value.acKind !== undefined && value.acKind !== 'ImageManifest')
      problems.push(`manifest.acKind is ${JSON.stringify(value.acKind)}, not "ImageManifest"`)
    if (value.app !== undefined) problems.push(...appShape(value.app, 'manifest.app'))
  }
  if (problems.length > 0) throw new UserError(`${file} has an ill-formed manifest: ${problems.join('; ')}`)
  return value as ImageManifest
}
