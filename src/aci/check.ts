// What `nix2aci validate` checks: the image as rkt would take it (actool, the tar's entries, a
// volume for every mount point, the signature beside it), and that this host has every path its
// volumes name.
import { validateWithActool } from './actool.js'
import { exists, missingPaths, signatureFileOf } from './files.js'
import { layerProblems } from './layers.js'
import { readImage, type ImageContents } from './inspect.js'
import { NotAnImageFile } from './read.js'
import type { MountPoint } from './manifest.js'
import { mountsFileOf, readMountsFile } from './mounts.js'
import { verifySignature } from './sign.js'
import type { HostVolume } from '../plan/plan.js'
import { isStorePath } from '../nix/selectors.js'
import { UserError } from '../util/errors.js'

/** How the problem of missing mount sources starts, for a reader that lists those paths itself. */
export const MISSING_SOURCES = 'mount sources missing on this host'

export interface CheckReport {
  image: string
  /** No problems; warnings leave an image valid. */
  valid: boolean
  actool: 'passed' | 'rejected' | 'not installed' | 'not run'
  /** `none`: no `.aci.asc` beside the image. */
  signature: 'none' | 'good' | 'bad' | 'unverified'
  problems: string[]
  /** What the user must still give `rkt run`: a `--volume` for a mount point the `.mounts` file leaves open. */
  warnings: string[]
  missingMountSources: string[]
}

export async function checkImage(image: string, signal?: AbortSignal): Promise<CheckReport> {
  const problems: string[] = []
  const warnings: string[] = []
  let contents: ImageContents | undefined
  let readable = true
  try {
    contents = await readImage(image, signal)
  } catch (error) {
    if (!(error instanceof UserError)) throw error
    problems.push(error.message)
    // actool on a directory, a device or nothing at all tells nothing more (and `/dev/zero` never ends).
    readable = !(error instanceof NotAnImageFile)
  }
  if (contents) {
    const extra = contents.topLevel.filter((name) => name !== 'manifest' && name !== 'rootfs')
    if (extra.length > 0)
      problems.push(`unexpected top-level entries (only manifest and rootfs/ belong there): ${extra.join(', ')}`)
    if (contents.escapingEntries.length > 0)
      problems.push(`entries outside the image (absolute or climbing out with ..): ${listed(contents.escapingEntries)}`)
  }
  let actool: CheckReport['actool'] = readable ? 'not installed' : 'not run'
  if (readable) {
    try {
      if (await validateWithActool([image], signal)) actool = 'passed'
    } catch (error) {
      if (!(error instanceof UserError)) throw error
      actool = 'rejected'
      problems.push(error.message)
    }
  }
  if (contents?.kind === 'layered') problems.push(...(await layerProblems(image, contents, signal)))
  let missingMountSources: string[] = []
  if (contents) {
    const volumes = await mountVolumes(image, contents, problems, warnings)
    missingMountSources = await missingPaths(volumes.map((volume) => volume.source))
    if (missingMountSources.length > 0) problems.push(`${MISSING_SOURCES}: ${missingMountSources.join(' ')}`)
  }
  const signature = readable ? await checkSignature(image, problems, signal) : 'none'
  return { image, valid: problems.length === 0, actool, signature, problems, warnings, missingMountSources }
}

/**
 * The volumes rkt would get from the `.mounts` file, matched against the manifest's mount points as
 * rkt matches them (by name). A thin image's store mounts must each have their volume, with the
 * store path as source: without it rkt refuses the image. Any other mount point without a volume is
 * the user's to fill at run time: a warning with the `--volume` to add. Without a `.mounts` file,
 * the host paths a thin image needs are its store mount points.
 */
async function mountVolumes(
  image: string,
  contents: ImageContents,
  problems: string[],
  warnings: string[],
): Promise<HostVolume[]> {
  const mountsFile = mountsFileOf(image)
  const mountPoints = contents.manifest.app?.mountPoints ?? []
  const storeMounts = contents.kind === 'thin' ? mountPoints.filter((mount) => isStorePath(mount.path)) : []
  let volumes: HostVolume[] | undefined
  try {
    volumes = await readMountsFile(image)
  } catch (error) {
    if (!(error instanceof UserError)) throw error
    problems.push(error.message)
    return []
  }
  const open = (mounts: MountPoint[]) =>
    mounts.forEach((mount) =>
      warnings.push(
        `mount point ${mount.name} (${mount.path}) has no volume: rkt run needs --volume=${mount.name},kind=host,source=HOST_PATH`,
      ),
    )
  if (volumes === undefined) {
    if (storeMounts.length > 0)
      problems.push(
        `no ${mountsFile} beside the image: rkt run needs a --volume for each of its ${storeMounts.length} store mount points`,
      )
    open(mountPoints.filter((mount) => !storeMounts.includes(mount)))
    return storeMounts.map((mount) => ({ name: mount.name, source: mount.path, readOnly: true }))
  }
  const byName = new Map(volumes.map((volume) => [volume.name, volume]))
  const stray = volumes.filter((volume) => !mountPoints.some((mount) => mount.name === volume.name))
  if (stray.length > 0)
    problems.push(
      `${mountsFile} does not match the image: volumes for no mount point: ${listed(stray.map((v) => v.name))}`,
    )
  const unfilled = storeMounts.filter((mount) => !byName.has(mount.name))
  if (unfilled.length > 0)
    problems.push(
      `${mountsFile} does not match the image: store mount points without a volume: ${listed(unfilled.map((m) => m.name))}`,
    )
  const elsewhere = storeMounts.filter(
    (mount) => byName.has(mount.name) && byName.get(mount.name)!.source !== mount.path,
  )
  if (elsewhere.length > 0)
    problems.push(
      `${mountsFile} does not match the image: store mount points whose volume has another source: ${listed(
        elsewhere.map((m) => `${m.name} (${byName.get(m.name)!.source}, not ${m.path})`),
      )}`,
    )
  open(mountPoints.filter((mount) => !storeMounts.includes(mount) && !byName.has(mount.name)))
  return volumes
}

/** Up to five of a list, and how many more: a problem stays one readable line. */
function listed(items: string[]): string {
  const shown = items.slice(0, 5).join(', ')
  return items.length > 5 ? `${shown} and ${items.length - 5} more` : shown
}

async function checkSignature(
  image: string,
  problems: string[],
  signal: AbortSignal | undefined,
): Promise<CheckReport['signature']> {
  const signature = signatureFileOf(image)
  if (!(await exists(signature))) return 'none'
  const result = await verifySignature(image, signature, signal)
  if (result.status !== 'good') problems.push(`signature ${signature}: ${result.status}: ${result.detail}`)
  return result.status
}
