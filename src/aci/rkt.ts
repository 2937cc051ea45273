// The `rkt run` command line for an image: its .mounts volumes, and trust by signature when it has one.
import { readFile } from 'node:fs/promises'
import { exists, signatureFileOf } from './files.js'
import { mountsFileOf } from './mounts.js'

/** A signed image is verified by rkt against its trusted keys; an unsigned one needs the insecure option. */
export function trustOptions(signed: boolean): string[] {
  return signed ? [] : ['--insecure-options=image']
}

export async function rktRunArgs(image: string, appArgs: readonly string[]): Promise<string[]> {
  const mounts = await readFile(mountsFileOf(image), 'utf8').catch(() => '')
  const signed = await exists(signatureFileOf(image))
  return [
    'run',
    ...trustOptions(signed),
    ...mounts.split(/\s+/).filter(Boolean),
    image,
    ...(appArgs.length > 0 ? ['--', ...appArgs] : []),
  ]
}
