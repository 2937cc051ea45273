// The `.mounts` file beside an image: the `rkt run --volume=...` arguments that fill its mount points,
// on one line, so that `rkt run $(cat NAME.mounts) NAME.aci` works. This module writes it, reads it
// and names it; nothing else knows its syntax.
import { readFile } from 'node:fs/promises'
import { isAbsolute } from 'node:path'
import type { HostVolume } from '../plan/plan.js'
import { commandLineLimit, commandLineSize } from '../util/command-line.js'
import { UserError } from '../util/errors.js'

/** `<name>.mounts` beside `<name>.aci`. */
export function mountsFileOf(image: string): string {
  return image.replace(/\.aci$/, '') + '.mounts'
}

/** One `--volume=` argument as rkt takes it; `readOnly` is written only when true (absent: as the mount point says). */
export function volumeArgument(volume: HostVolume): string {
  return `--volume=${volume.name},kind=host,source=${volume.source}${volume.readOnly ? ',readOnly=true' : ''}`
}

/** The file's text: every volume's argument, on one line. */
export function formatMountsFile(volumes: readonly HostVolume[]): string {
  return `${volumes.map(volumeArgument).join(' ')}\n`
}

/**
 * The volumes of a `.mounts` file's text, refusing what rkt's `--volume` parser refuses here: another
 * argument, a kind other than host, a relative source, an unknown or repeated field.
 */
export function parseMountsFile(text: string, file = '.mounts'): HostVolume[] {
  const bad = (arg: string, why: string) => new UserError(`${file}: ${arg.slice(0, 120)}: ${why}`)
  return text
    .split(/\s+/)
    .filter(Boolean)
    .map((arg) => {
      if (!arg.startsWith('--volume=')) throw bad(arg, 'not a --volume= argument')
      const [name = '', ...fields] = arg.slice('--volume='.length).split(',')
      const values = new Map<string, string>()
      for (const field of fields) {
        const at = field.indexOf('=')
        const key = field.slice(0, at)
        if (at <= 0 || !['kind', 'source', 'readOnly'].includes(key)) throw bad(arg, `unknown field '${field}'`)
        if (values.has(key)) throw bad(arg, `'${key}' given twice`)
        values.set(key, field.slice(at + 1))
      }
      const source = values.get('source') ?? ''
      if (name === '') throw bad(arg, 'no volume name')
      if (values.get('kind') !== 'host') throw bad(arg, 'kind must be host')
      if (!isAbsolute(source)) throw bad(arg, 'source must be an absolute path')
      const readOnly = values.get('readOnly')
      if (readOnly !== undefined && readOnly !== 'true' && readOnly !== 'false')
        throw bad(arg, 'readOnly must be true or false')
      return { name, source, readOnly: readOnly === 'true' }
    })
}

/** The volumes of the `.mounts` file beside `image`, or undefined when there is none. */
export async function readMountsFile(image: string): Promise<HostVolume[] | undefined> {
  const file = mountsFileOf(image)
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined
    throw new UserError(`cannot read ${file}: ${error.message}`)
  })
  return text === undefined ? undefined : parseMountsFile(text, file)
}

/**
 * Why `rkt run $(cat NAME.mounts) ...` would fail on this host, or undefined: the volumes of a large
 * closure, with the environment, can take more than execve accepts (E2BIG, "Argument list too long").
 */
export function mountsTooLongWarning(volumes: readonly HostVolume[], mountsFile: string): string | undefined {
  const size = commandLineSize(volumes.map(volumeArgument))
  const limit = commandLineLimit()
  if (size <= limit) return undefined
  return (
    `the ${volumes.length} volumes of ${mountsFile} take ${size} bytes with the environment, more than a command ` +
    `line holds here (${limit} bytes): rkt run $(cat ...) fails with "Argument list too long"; nix2aci run ` +
    `passes them to rkt in a pod manifest instead`
  )
}
