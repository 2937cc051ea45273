// The manifest options users set beyond name and exec, parsed from their command-line spellings
// and checked against the appc rules before any Nix work.
import { posix } from 'node:path'
import { acIdentifierProblem, acNameProblem } from './appc.js'
import type { OptionTable, OptionValues } from './options.js'
import { hostPathProblem } from './plan.js'
import { UserError } from '../util/errors.js'

export interface NameValue {
  name: string
  value: string
}

export interface Port {
  name: string
  protocol: string
  port: number
  count: number
  socketActivated: boolean
}

export interface UserMount {
  name: string
  path: string
  readOnly: boolean
}

export interface Isolator {
  name: string
  value: unknown
}

export type EventName = 'pre-start' | 'post-stop'

/** Everything about the app that the user chose; argv entries may still name programs in the profile. */
export interface AppOptions {
  /** Replaces the default exec `[<binary>]`; a first word without `/` is looked up in the profile. */
  exec?: string[]
  /** Appended to the exec (what follows `--` on the command line). */
  execArgs: string[]
  labels: NameValue[]
  environment: NameValue[]
  ports: Port[]
  mounts: UserMount[]
  /** Host paths for user mounts, written to the `.mounts` file. */
  volumes: NameValue[]
  isolators: Isolator[]
  user?: string
  group?: string
  supplementaryGIDs: number[]
  workingDirectory?: string
  annotations: NameValue[]
  eventHandlers: Array<{ name: EventName; exec: string[] }>
}

/** The manifest options, as the command line spells them; spec files take the same in camelCase. */
export const MANIFEST_OPTIONS = {
  exec: { type: 'string', describe: "the app's full command line (default: <binary>); args after -- are appended" },
  'image-version': { type: 'string', describe: 'the version label' },
  label: { type: 'strings', describe: 'a label, k=v (repeatable)' },
  env: { type: 'strings', describe: 'an environment variable, K=V (repeatable)' },
  port: { type: 'strings', describe: 'a port, name:protocol:port[:count][:socket-activated]' },
  mount: { type: 'strings', describe: 'a mount point for the user to fill, name:path[:ro]' },
  volume: { type: 'strings', describe: 'a host path for a --mount, name=hostpath (goes to .mounts)' },
  isolator: { type: 'strings', describe: 'an isolator, name=JSON' },
  user: { type: 'string', describe: 'user to run as (default 0)' },
  group: { type: 'string', describe: 'group to run as (default 0)' },
  'supplementary-gid': { type: 'numbers', describe: 'a supplementary group ID (repeatable)' },
  'working-dir': { type: 'string', describe: "the app's working directory (absolute)" },
  annotation: { type: 'strings', describe: 'an annotation, k=v (repeatable)' },
  'pre-start': { type: 'string', describe: 'command to run before the app starts' },
  'post-stop': { type: 'string', describe: 'command to run after the app stops' },
} as const satisfies OptionTable

/** What the user typed, option by option, before parsing (the CLI's and the spec file's shape). */
export type AppOptionInput = OptionValues<typeof MANIFEST_OPTIONS> & {
  /** What follows `--` on the command line. */
  execArgs?: string[]
}

function fail(option: string, value: string, rule: string): never {
  throw new UserError(`--${option} '${value}': ${rule}`)
}

/** `k=v`, split at the first `=`. */
function keyValue(option: string, text: string, separator = '='): NameValue {
  const at = text.indexOf(separator)
  if (at <= 0) fail(option, text, `expected NAME${separator}VALUE`)
  return { name: text.slice(0, at), value: text.slice(at + 1) }
}

function identifierPair(option: string, text: string): NameValue {
  const pair = keyValue(option, text)
  const problem = acIdentifierProblem(pair.name)
  if (problem) fail(option, text, problem)
  return pair
}

const ENV_NAME = /^[A-Za-z_][A-Za-z_0-9]*$/

function parseEnv(text: string): NameValue {
  const pair = keyValue('env', text)
  if (!ENV_NAME.test(pair.name))
    fail('env', text, 'variable names are letters, digits and "_", not starting with a digit')
  return pair
}

export function parsePort(text: string): Port {
  const [name = '', protocol = '', portText = '', ...rest] = text.split(':')
  if (!name || !protocol || !portText || rest.length > 2)
    fail('port', text, 'expected name:protocol:port[:count][:socket-activated]')
  const nameProblem = acNameProblem(name)
  if (nameProblem) fail('port', text, nameProblem)
  if (protocol !== 'tcp' && protocol !== 'udp') fail('port', text, 'protocol must be tcp or udp')
  const port = decimal(portText)
  if (port === undefined) fail('port', text, `port '${portText}' must be written in decimal digits`)
  if (port < 1 || port > 65535) fail('port', text, 'port must be in 1-65535 range')
  let count = 1
  let socketActivated = false
  for (const extra of rest) {
    const number = decimal(extra)
    if (extra === 'socket-activated') socketActivated = true
    else if (number !== undefined && number >= 1) count = number
    else fail('port', text, `'${extra}' is neither a count (1 or more) nor socket-activated`)
  }
  if (port + count > 65536) fail('port', text, 'end of port range must be in 1-65535 range')
  return { name, protocol, port, count, socketActivated }
}

function parseMount(text: string): UserMount {
  const [name = '', path = '', flag, ...rest] = text.split(':')
  if (!name || !path || rest.length > 0 || (flag !== undefined && flag !== 'ro'))
    fail('mount', text, 'expected name:path[:ro]')
  const problem = acNameProblem(name)
  if (problem) fail('mount', text, problem)
  if (!path.startsWith('/')) fail('mount', text, 'the path must be absolute')
  return { name, path, readOnly: flag === 'ro' }
}

function parseIsolator(text: string): Isolator {
  const { name, value } = identifierPair('isolator', text)
  try {
    return { name, value: JSON.parse(value) as unknown }
  } catch {
    fail('isolator', text, 'the value must be JSON')
  }
}

/** Splits a command like a shell would: words, with '...' and "..." quoting and \ escapes. */
export function splitCommand(option: string, text: string): string[] {
  const words: string[] = []
  let word: string | undefined
  let quote: string | undefined
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quote) {
      if (c === quote) quote = undefined
      else if (c === '\\' && quote === '"' && i + 1 < text.length) word += text[++i]
      else word += c
    } else if (c === "'" || c === '"') {
      quote = c
      word ??= ''
    } else if (c === '\\' && i + 1 < text.length) {
      word = (word ?? '') + text[++i]
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word)
      word = undefined
    } else {
      word = (word ?? '') + c
    }
  }
  if (quote) fail(option, text, `unterminated ${quote} quote`)
  if (word !== undefined) words.push(word)
  if (words.length === 0) fail(option, text, 'the command is empty')
  return words
}

/** A number as people write one: decimal digits only, not `0x50`, ` 80` or `1e3`, which Number() takes. */
function decimal(text: string): number | undefined {
  return /^[0-9]+$/.test(text) ? Number(text) : undefined
}

/** The kernel's gid_t is 32 bits, and its all-ones value means "no group". */
const MAX_GID = 2 ** 32 - 2

/** From the command line, text; from a spec file, a JSON number. */
function parseGid(given: string | number): number {
  const gid = typeof given === 'number' ? given : decimal(given)
  if (gid === undefined || !Number.isInteger(gid) || gid < 0 || gid > MAX_GID)
    fail('supplementary-gid', String(given), `must be a whole number from 0 to ${MAX_GID}`)
  return gid
}

/**
 * Whether a program's path inside the profile (`libexec/foo`; a leading `/` is dropped, as for
 * `<binary>`) climbs out of it once normalised: `bin/../../../../usr/bin/env` names a host path
 * that the container does not have. A name without `/` is looked up in bin/ and sbin/.
 */
function escapesProfile(path: string): boolean {
  const normal = posix.normalize(path.replace(/^\/+/, ''))
  return path.includes('/') && (normal === '..' || normal.startsWith('../'))
}

/** `<binary>` is always a path in the profile (a leading `/` too); checked before any Nix work. */
export function checkBinary(binary: string): void {
  if (escapesProfile(binary))
    throw new UserError(`binary '${binary}' leads out of the profile: a path with a / is taken inside the profile`)
}

/** A command's words; its program, unless absolute (the user's own path), must stay inside the profile. */
function parseCommand(option: string, text: string): string[] {
  const words = splitCommand(option, text)
  const program = words[0]!
  if (!program.startsWith('/') && escapesProfile(program))
    fail(option, text, `'${program}' leads out of the profile: a program without a leading / is taken inside it`)
  return words
}

/** Parses and checks every option; the first bad value ends it with an error naming the rule. */
export function parseAppOptions(input: AppOptionInput): AppOptions {
  const labels = (input.label ?? []).map((text) => identifierPair('label', text))
  if (input.imageVersion !== undefined) labels.unshift({ name: 'version', value: input.imageVersion })
  const mounts = (input.mount ?? []).map(parseMount)
  const mountNames = new Set(mounts.map((mount) => mount.name))
  const filled = new Set<string>()
  const volumes = (input.volume ?? []).map((text) => {
    const volume = keyValue('volume', text)
    if (!mountNames.has(volume.name)) fail('volume', text, `no --mount declares a mount point named '${volume.name}'`)
    if (filled.has(volume.name)) fail('volume', text, `mount point '${volume.name}' already has a volume`)
    filled.add(volume.name)
    if (!volume.value.startsWith('/')) fail('volume', text, 'the host path must be absolute')
    const problem = hostPathProblem(volume.value)
    if (problem) fail('volume', text, problem)
    return volume
  })
  if (input.workingDir !== undefined && !input.workingDir.startsWith('/'))
    fail('working-dir', input.workingDir, 'workingDirectory must be an absolute path')
  for (const [option, value] of [
    ['user', input.user],
    ['group', input.group],
  ] as const) {
    if (value === '') fail(option, value, `${option} cannot be empty`)
  }
  const eventHandlers: AppOptions['eventHandlers'] = []
  if (input.preStart) eventHandlers.push({ name: 'pre-start', exec: parseCommand('pre-start', input.preStart) })
  if (input.postStop) eventHandlers.push({ name: 'post-stop', exec: parseCommand('post-stop', input.postStop) })
  const environment = (input.env ?? []).map(parseEnv)
  return {
    ...(input.exec !== undefined ? { exec: parseCommand('exec', input.exec) } : {}),
    execArgs: input.execArgs ?? [],
    labels,
    environment,
    ports: (input.port ?? []).map(parsePort),
    mounts,
    volumes,
    isolators: (input.isolator ?? []).map(parseIsolator),
    ...(input.user !== undefined ? { user: input.user } : {}),
    ...(input.group !== undefined ? { group: input.group } : {}),
    supplementaryGIDs: (input.supplementaryGid ?? []).map(parseGid),
    ...(input.workingDir !== undefined ? { workingDirectory: input.workingDir } : {}),
    annotations: (input.annotation ?? []).map((text) => identifierPair('annotation', text)),
    eventHandlers,
  }
}
