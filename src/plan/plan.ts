// The image plan: everything an engine needs to write an ACI, computed from Nix facts with no I/O.
import { basename } from 'node:path'
import { UserError } from '../util/errors.js'
import type { AppOptions, EventName, Isolator, NameValue, Port } from './app-options.js'
import { acIdentifierProblem, toAcName } from './appc.js'

export type ImageKind = 'thin' | 'fat'

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
  /** Store paths copied whole into the rootfs's store directory (fat images); empty for thin images. */
  storePaths: string[]
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
}

const RESOLV_CONF = '/etc/resolv.conf'
const RESOLV_CONF_MOUNT = 'resolv-conf'
const ETC_HOSTS = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'

/** Refuses a name that is not an AC Identifier, before any Nix work. */
export function checkImageName(name: string): void {
  const problem = acIdentifierProblem(name)
  if (problem) throw new UserError(`invalid image name '${name}': ${problem}`)
}

/** Adds or replaces by name, keeping the first position, as acbuild's `... add` commands do. */
function upsert<T extends { name: string }>(list: T[], item: T): T[] {
  const at = list.findIndex((existing) => existing.name === item.name)
  if (at < 0) return [...list, item]
  return list.map((existing, i) => (i === at ? item : existing))
}

export function planImage(facts: NixFacts, options: PlanOptions): ImagePlan {
  checkImageName(options.name)
  const { app } = options
  const fat = options.kind === 'fat'
  const mountPoints: MountPoint[] = []
  const volumes: HostVolume[] = []
  const addHostMount = (name: string, path: string) => {
    mountPoints.push({ name, path, readOnly: true })
    volumes.push({ name, source: path, readOnly: true })
  }
  // Sorted here, whatever order Nix listed them in, so the same closure always plans the same image.
  const closure = [...facts.closure].sort()
  if (!fat) storeMountNames(closure).forEach((name, i) => addHostMount(name, closure[i]!))
  if (options.resolvConf) addHostMount(RESOLV_CONF_MOUNT, RESOLV_CONF)
  for (const mount of app.mounts) {
    if (mountPoints.some((existing) => existing.name === mount.name))
      throw new UserError(`--mount '${mount.name}': a mount point of that name is already declared`)
    mountPoints.push(mount)
    const volume = app.volumes.find((v) => v.name === mount.name)
    if (volume) volumes.push({ name: mount.name, source: volume.value, readOnly: mount.readOnly })
  }

  // The skeleton's own directories: etc and the store's (nix, nix/store). A package's top-level
  // `etc` or `nix` is not linked over them.
  const skeletonDirs = ['etc', ...parentsOf(facts.storeDir)]
  const skeleton: SkeletonEntry[] = skeletonDirs.map((path) => ({ type: 'dir', path }))
  if (fat) skeleton.push({ type: 'file', path: 'etc/hosts', content: ETC_HOSTS })
  for (const entry of facts.topLevel) {
    if (skeletonDirs.includes(entry)) continue
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
    labels: app.labels.reduce(upsert, platformLabels),
    app: {
      exec: [...(app.exec ?? [facts.execPath]), ...app.execArgs],
      eventHandlers: app.eventHandlers,
      // acbuild makes the app run as root unless told otherwise; rkt needs both set.
      user: app.user ?? '0',
      group: app.group ?? '0',
      supplementaryGIDs: app.supplementaryGIDs,
      ...(app.workingDirectory !== undefined ? { workingDirectory: app.workingDirectory } : {}),
      environment: app.environment.reduce(upsert<NameValue>, []),
      mountPoints,
      ports: app.ports.reduce(upsert<Port>, []),
      isolators: app.isolators.reduce(upsert<Isolator>, []),
    },
    annotations: app.annotations.reduce(upsert<NameValue>, []),
    volumes,
    skeleton,
    storeDir: facts.storeDir,
    storePaths: fat ? closure : [],
  }
}

/** `/nix/store` -> `nix`, `nix/store`: the directories down to it, relative to the root. */
function parentsOf(dir: string): string[] {
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
