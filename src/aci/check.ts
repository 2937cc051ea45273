// What `nix2aci validate` checks: the image as rkt would take it, and, for a thin image, that this
// host has every path its mounts name.
import { readFile } from 'node:fs/promises'
import { validateWithActool } from './actool.js'
import { exists, mountsFileOf } from './files.js'
import { readImage, type ImageContents } from './inspect.js'
import { isStorePath } from '../nix/selectors.js'
import { UserError, messageOf } from '../util/errors.js'

/** How the problem of missing mount sources starts, for a reader that lists those paths itself. */
export const MISSING_SOURCES = 'mount sources missing on this host'

export interface CheckReport {
  image: string
  valid: boolean
  actool: 'passed' | 'not installed'
  problems: string[]
  missingMountSources: string[]
}

/** Host sources named by a `.mounts` file's `--volume=...,source=PATH,...` arguments. */
function volumeSources(mountsText: string): string[] {
  return mountsText
    .split(/\s+/)
    .filter(Boolean)
    .map((arg) => /(?:^--volume=|,)source=([^,]+)/.exec(arg)?.[1])
    .filter((source): source is string => source !== undefined)
}

export async function checkImage(image: string): Promise<CheckReport> {
  const problems: string[] = []
  let contents: ImageContents | undefined
  try {
    contents = await readImage(image)
  } catch (error) {
    if (!(error instanceof UserError)) throw error
    problems.push(error.message)
  }
  if (contents) {
    const extra = contents.topLevel.filter((name) => name !== 'manifest' && name !== 'rootfs')
    if (extra.length > 0)
      problems.push(`unexpected top-level entries (only manifest and rootfs/ belong there): ${extra.join(', ')}`)
    if (contents.manifest.acKind !== 'ImageManifest') problems.push('the manifest is not an ImageManifest')
  }
  let actool: CheckReport['actool'] = 'not installed'
  try {
    if (await validateWithActool(image)) actool = 'passed'
  } catch (error) {
    problems.push(messageOf(error))
  }
  const missingMountSources = contents ? await missingSources(image, contents) : []
  if (missingMountSources.length > 0) problems.push(`${MISSING_SOURCES}: ${missingMountSources.join(' ')}`)
  return { image, valid: problems.length === 0, actool, problems, missingMountSources }
}

/**
 * The host paths the image needs but this host lacks: the sources its `.mounts` file names, or,
 * without one, the store paths its mount points expect (a thin image's closure).
 */
async function missingSources(image: string, contents: ImageContents): Promise<string[]> {
  const mountsText = await readFile(mountsFileOf(image), 'utf8').catch(() => undefined)
  const app = contents.manifest.app as { mountPoints?: Array<{ path: string }> } | undefined
  const sources =
    mountsText !== undefined
      ? volumeSources(mountsText)
      : (app?.mountPoints ?? []).map((mount) => mount.path).filter(isStorePath)
  const present = await Promise.all(sources.map(exists))
  return sources.filter((_, i) => !present[i])
}
