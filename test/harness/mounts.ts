// Volumes as rkt takes them (`--volume=` arguments, from a .mounts file) and the mount points they fill.
import { isAbsolute } from 'node:path'
import { AC_NAME } from '../helpers/ac-name.js'
import type { MountPoint } from './unpack.js'

/** One `--volume=` of a .mounts file. `readOnly` absent means "as the mount point says", as in rkt. */
export interface Volume {
  name: string
  kind: 'host'
  source: string
  readOnly?: boolean
}

// Go's strconv.ParseBool, which appc uses for readOnly.
const BOOLS: Record<string, boolean> = Object.fromEntries([
  ...['1', 't', 'T', 'true', 'TRUE', 'True'].map((s) => [s, true]),
  ...['0', 'f', 'F', 'false', 'FALSE', 'False'].map((s) => [s, false]),
])

/**
 * Parses the one-line `.mounts` format, `--volume=NAME,kind=host,source=PATH[,readOnly=BOOL] ...`,
 * refusing what appc's VolumeFromString refuses (unknown or repeated keys, relative sources).
 */
export function parseMountsFile(text: string): Volume[] {
  const volumes = text
    .split(/\s+/)
    .filter(Boolean)
    .map((arg): Volume => {
      const match = /^--volume=([^,]*)(?:,(.*))?$/.exec(arg)
      if (!match) throw new Error(`not a --volume argument: ${arg}`)
      const name = match[1]!
      if (!AC_NAME.test(name)) throw new Error(`${arg}: '${name}' is not a valid volume name`)
      const fields = new Map<string, string>()
      for (const field of (match[2] ?? '').split(',').filter(Boolean)) {
        const at = field.indexOf('=')
        if (at <= 0) throw new Error(`${arg}: malformed field '${field}'`)
        const key = field.slice(0, at)
        if (!['kind', 'source', 'readOnly'].includes(key)) throw new Error(`${arg}: unknown volume parameter '${key}'`)
        if (fields.has(key)) throw new Error(`${arg}: '${key}' given twice`)
        fields.set(key, field.slice(at + 1))
      }
      const kind = fields.get('kind')
      const source = fields.get('source')
      if (kind !== 'host') throw new Error(`${arg}: kind must be host (got ${kind ?? 'none'})`)
      if (!source || !isAbsolute(source)) throw new Error(`${arg}: source must be an absolute path`)
      const volume: Volume = { name, kind, source }
      const readOnly = fields.get('readOnly')
      if (readOnly !== undefined) {
        if (!(readOnly in BOOLS)) throw new Error(`${arg}: readOnly must be true or false`)
        volume.readOnly = BOOLS[readOnly]!
      }
      return volume
    })
  const names = volumes.map((v) => v.name)
  const repeated = names.find((name, i) => names.indexOf(name) !== i)
  if (repeated) throw new Error(`volume '${repeated}' given twice`)
  return volumes
}

/** What goes at a mount point's path: a host directory, or (no volume) an empty writable one. */
export interface Mount {
  path: string
  source?: string
  readOnly: boolean
}

/**
 * The image's mount points filled with the volumes, parents before children (so a mount point below
 * another is not hidden by it). Throws, as rkt does, on a volume that fills no mount point and, unless
 * `ignoreMissing` (rkt >= 1.0 then gives an empty directory), on a mount point with no volume.
 */
export function fillMountPoints(
  image: string,
  mountPoints: readonly MountPoint[],
  volumes: readonly Volume[],
  ignoreMissing = false,
): Mount[] {
  const strays = volumes.filter((v) => !mountPoints.some((mp) => mp.name === v.name))
  if (strays.length)
    throw new Error(`${image}: volumes fill no mount point: ${strays.map((v) => `'${v.name}'`).join(', ')}`)
  const missing = mountPoints.filter((mp) => !volumes.some((v) => v.name === mp.name))
  if (missing.length && !ignoreMissing) {
    const list = missing.map((mp) => `mount point '${mp.name}' (${mp.path}) has no volume`).join('; ')
    throw new Error(`${image}: ${list}`)
  }
  return [...mountPoints]
    .sort((a, b) => (a.path < b.path ? -1 : 1))
    .map((mp) => {
      const volume = volumes.find((v) => v.name === mp.name)
      if (!volume) return { path: mp.path, readOnly: false }
      // rkt: the volume's readOnly, when given, overrides the mount point's.
      return { path: mp.path, source: volume.source, readOnly: volume.readOnly ?? mp.readOnly ?? false }
    })
}
