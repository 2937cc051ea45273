// The image plan: everything an engine needs to write an ACI, computed from Nix facts with no I/O.
import { basename, posix } from 'node:path'
import { UserError } from '../util/errors.js'
import { acIdentifierProblem, toAcName } from './appc.js'
import type { Dependency } from '../aci/manifest.js'
import type { AppOptions, EventName, Isolator, NameValue, Port } from './app-options.js'

/** `layered`: a fat image's closure in layer images of its own, which the image names as dependencies. */
export type ImageKind = 'thin' | 'fat' | 'layered'

export interface MountPoint {
  name: string
  path: string
  readOnly: boolean
}

/** A host path that fills a mount point at run time (`rkt run --volume=...`). */
export interface HostVolume {
  name: string
  source: string
  readOnly: boolean
}

/** An entry of the rootfs skeleton; paths are relative to rootfs/, parents listed before children. */
export type SkeletonEntry =
  | { type: 'dir'; path: string }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'file'; path: string; content: string }

/** The app section of the manifest, in the order acbuild builds it. */
export interface AppPlan {
  exec: string[]
  eventHandlers: Array<{ name: EventName; exec: string[] }>
  user: string
  group: string
  supplementaryGIDs: number[]
  workingDirectory?: string
  environment: NameValue[]
  mountPoints: MountPoint[]
  ports: Port[]
  isolators: Isolator[]
}

export interface ImagePlan {
  kind: ImageKind
  name: string
  labels: NameValue[]
  app: AppPlan
  annotations: NameValue[]
  volumes: HostVolume[]
  skeleton: SkeletonEntry[]
  /** The Nix store directory (`/nix/store`), which the rootfs has and a fat image fills. */
  storeDir: string
  /**
   * Store paths copied whole into the rootfs's store directory: a fat image's closure, a layered
   * image's user environment (its own, unlike the layers); none for thin images.
   */
  storePaths: string[]
  /** The layers a layered image pins, rendered in this order under its own rootfs. */
  dependencies: Dependency[]
}

/** What the Nix layer found out about the packages. */
export interface NixFacts {
  /** The store directory the paths below are in: NIX_STORE_DIR, as for Nix itself, or /nix/store. */
  storeDir: string
  userEnvironment: string
  /** Top-level entries of the user environment (`bin`, `share`, ...). */
  topLevel: string[]
  execPath: string
  closure: string[]
}

export interface PlanOptions {
  kind: ImageKind
  name: string
  os: string
  arch: string
  resolvConf: boolean
  /** The user's manifest options, with every program already resolved to an absolute path. */
  app: AppOptions
  /** A layered image's layers, once written (their image IDs known), and the store paths it holds itself. */
  layered?: { dependencies: Dependency[]; ownPaths: string[] }
}

const RESOLV_CONF = '/etc/resolv.conf'
const RESOLV_CONF_MOUNT = 'resolv-conf'
const ETC_HOSTS = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'

/** The longest file name a Linux file system takes (NAME_MAX), in bytes. */
const NAME_MAX = 255
/**
 * The most that the names of the files beside an image add to its name: nix-env makes each of the
 * profile's generation links, `<name>.profile-N-link`, through `<name>.profile-N-link.tmp-PID-RANDOM`
 * (N up to a million builds, a 7-digit PID, rand()'s 10 digits), longer than `.aci.asc` or the
 * staging directory `.<name>.building-XXXXXX`.
 */
const LONGEST_FILE_SUFFIX = '.profile-999999-link.tmp-4194304-2147483647'.length
export const MAX_IMAGE_NAME = NAME_MAX - LONGEST_FILE_SUFFIX

/** Refuses a name that is not an AC Identifier, or too long to name its files, before any Nix work. */
export function checkImageName(name: string): void {
  const problem = acIdentifierProblem(name)
  if (problem) throw new UserError(`invalid image name '${name}': ${problem}`)
  if (name.length > MAX_IMAGE_NAME)
    throw new UserError(
      `image name '${name.slice(0, 40)}...' is too long: ${name.length} characters, at most ${MAX_IMAGE_NAME} ` +
        `(files named after it, such as nix-env's <name>.profile-N-link.tmp-PID-RANDOM, must fit the file system's ${NAME_MAX}-byte limit)`,
    )
}

/**
 * What rkt's `--volume=NAME,kind=host,source=PATH` cannot carry (a comma ends the source), and what
 * the shell's splitting of `$(cat NAME.mounts)` would split or expand (white space, glob characters),
 * or a later reader of the file would take for quoting.
 */
const UNCARRIED = /[\s,*?["'\\]/

/** Why a host path cannot go into a `.mounts` file, or undefined when it can. */
export function hostPathProblem(path: string): string | undefined {
  const found = UNCARRIED.exec(path)?.[0]
  if (found === undefined) return undefined
  const what = found === ' ' ? 'a space' : found === ',' ? 'a comma' : /\s/.test(found) ? 'white space' : `'${found}'`
  return `the host path holds ${what}, which rkt's --volume=NAME,kind=host,source=PATH and the shell's word splitting of $(cat NAME.mounts) cannot carry`
}

/**
 * Merges entries of one name as acbuild 0.4.0's `environment add` and `annotation add` do: the
 * last value, in the first one's place. Linear: a Map keeps each name where it first came.
 */
function replaceInPlace<T extends { name: string }>(items: readonly T[], first: readonly T[] = []): T[] {
  const byName = new Map(first.map((item) => [item.name, item]))
  for (const item of items) byName.set(item.name, item)
  return [...byName.values()]
}

/** Merges as acbuild 0.4.0's `label add`, `port add` and `isolator add` do: the last value, moved to the end. */
function replaceAtEnd<T extends { name: string }>(items: readonly T[], first: readonly T[] = []): T[] {
  const byName = new Map(first.map((item) => [item.name, item]))
  for (const item of items) {
    byName.delete(item.name)
    byName.set(item.name, item)
  }
  return [...byName.values()]
}

export function planImage(facts: NixFacts, options: PlanOptions): ImagePlan {
  checkImageName(options.name)
  const { app } = options
  const fat = options.kind === 'fat'
  // A layered image is a fat one whose closure lies in its layers.
  const inside = options.kind !== 'thin'
  const mountPoints: MountPoint[] = []
  const volumes: HostVolume[] = []
  const addHostMount = (name: string, path: string) => {
    const problem = hostPathProblem(path)
    if (problem) throw new UserError(`cannot mount ${path} from the host: ${problem}`)
    mountPoints.push({ name, path, readOnly: true })
    volumes.push({ name, source: path, readOnly: true })
  }
  // Sorted here, whatever order Nix listed them in, so the same closure always plans the same image.
  const closure = [...facts.closure].sort()
  if (!inside) storeMountNames(closure).forEach((name, i) => addHostMount(name, closure[i]!))
  if (options.resolvConf) addHostMount(RESOLV_CONF_MOUNT, RESOLV_CONF)
  // acbuild's `mount add` would move a mount point of a name already declared to the end; one
  // name for two paths is more likely a mistake, so it is refused.
  const mountNames = new Set(mountPoints.map((mountPoint) => mountPoint.name))
  const volumeSources = new Map(app.volumes.map((volume) => [volume.name, volume.value]))
  for (const mount of app.mounts) {
    if (mountNames.has(mount.name))
      throw new UserError(`--mount '${mount.name}': a mount point of that name is already declared`)
    mountNames.add(mount.name)
    mountPoints.push(mount)
    const source = volumeSources.get(mount.name)
    if (source !== undefined) volumes.push({ name: mount.name, source, readOnly: mount.readOnly })
  }

  const skeleton: SkeletonEntry[] = skeletonDirs(facts.storeDir).map((path) => ({ type: 'dir', path }))
  if (inside) skeleton.push({ type: 'file', path: 'etc/hosts', content: ETC_HOSTS })
  for (const entry of linkedEntries(facts)) {
    skeleton.push({ type: 'symlink', path: entry, target: `${facts.userEnvironment}/${entry}` })
  }
  skeleton.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))

  const platformLabels = [
    { name: 'arch', value: options.arch },
    { name: 'os', value: options.os },
  ]
  return {
    kind: options.kind,
    name: options.name,
    labels: replaceAtEnd(app.labels, platformLabels),
    app: {
      exec: [...(app.exec ?? [facts.execPath]), ...app.execArgs],
      eventHandlers: app.eventHandlers,
      // acbuild makes the app run as root unless told otherwise; rkt needs both set.
      user: app.user ?? '0',
      group: app.group ?? '0',
      supplementaryGIDs: app.supplementaryGIDs,
      ...(app.workingDirectory !== undefined ? { workingDirectory: app.workingDirectory } : {}),
      environment: replaceInPlace(app.environment),
      mountPoints,
      ports: replaceAtEnd(app.ports),
      isolators: replaceAtEnd(app.isolators),
    },
    annotations: replaceInPlace(app.annotations),
    volumes,
    skeleton,
    storeDir: facts.storeDir,
    storePaths: fat ? closure : [...(options.layered?.ownPaths ?? [])].sort(),
    dependencies: options.layered?.dependencies ?? [],
  }
}

/**
 * The skeleton's own directories: etc and the store's (`/nix/store` -> `nix`, `nix/store`),
 * relative to the root.
 */
function skeletonDirs(storeDir: string): string[] {
  return ['etc', ...parentsOf(storeDir)]
}

/** The profile's top-level entries the rootfs links to; a package's `etc` or `nix` is not linked over the skeleton's. */
function linkedEntries(facts: ImageFacts): string[] {
  const own = skeletonDirs(facts.storeDir)
  return facts.topLevel.filter((entry) => !own.includes(entry))
}

/** What decides where a path inside the image leads: the rootfs links and the closure. */
export type ImageFacts = Pick<NixFacts, 'storeDir' | 'userEnvironment' | 'topLevel' | 'closure'>

/**
 * The store path an absolute path inside the image leads to through the rootfs links (`/bin/sh` ->
 * `<user environment>/bin/sh`), when it lies in the closure: inside a fat image, mounted into a thin
 * one. Undefined for any other path, which the image does not carry.
 */
export function closurePathOf(facts: ImageFacts, path: string): string | undefined {
  const [first = '', ...rest] = posix.normalize(path).split('/').filter(Boolean)
  const linked = linkedEntries(facts).includes(first)
  const inStore = linked ? posix.join(facts.userEnvironment, first, ...rest) : posix.normalize(path)
  const inClosure = facts.closure.some((storePath) => inStore === storePath || inStore.startsWith(`${storePath}/`))
  return inClosure ? inStore : undefined
}

/** `/nix/store` -> `nix`, `nix/store`: the directories down to it, relative to the root. */
export function parentsOf(dir: string): string[] {
  const parts = dir.split('/').filter(Boolean)
  return parts.map((_, i) => parts.slice(0, i + 1).join('/'))
}

/**
 * One AC Name per store path, from its base name (`abc...-python3-3.11.2` -> `abc...-python3-3-11-2`).
 * The hash prefix makes them unique in practice; a numeric suffix settles any clash the
 * lower-casing could make.
 */
export function storeMountNames(storePaths: readonly string[]): string[] {
  const taken = new Set<string>([RESOLV_CONF_MOUNT])
  return storePaths.map((path) => {
    const base = toAcName(basename(path))
    let name = base
    for (let n = 2; taken.has(name); n++) name = `${base}-${n}`
    taken.add(name)
    return name
  })
}
