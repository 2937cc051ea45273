// What a finished build prints: a short summary for people, or one JSON object for scripts.
import type { BuildResult } from '../pipeline/build-image.js'
import { displayPath as shown } from '../util/paths.js'

export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`
}

export function describeBuild(result: BuildResult): string {
  const lines = [
    `Built ${shown(result.image)} (${result.kind}, ${result.engine} engine${result.validated ? ', passes actool validate' : ''})`,
    `  size:      ${formatSize(result.size)}`,
    `  image ID:  ${result.imageId}`,
    `  mounts:    ${result.mounts}${result.mountsFile ? ` (${shown(result.mountsFile)})` : ''}`,
  ]
  if (result.signature) lines.push(`  signature: ${shown(result.signature)}`)
  if (result.profile) lines.push(`  GC root:   ${shown(result.profile)} (Nix profile)`)
  lines.push(`  run it:    ${result.rktCommand}`)
  return lines.join('\n')
}
