// The `rkt run` command line for an image: its .mounts volumes, and trust by signature when it has one.
import { access, readFile } from 'node:fs/promises'
import { mountsFileOf, signatureFileOf } from './files.js'

export async function rktRunArgs(image: string, appArgs: readonly string[]): Promise<string[]> {
  const mounts = await readFile(mountsFileOf(image), 'utf8').catch(() => '')
  const signed = await access(signatureFileOf(image)).then(
    () => true,
    () => false,
  )
  return [
    'run',
    ...(signed ? [] : ['--insecure-options=image']),
    ...mounts.split(/\s+/).filter(Boolean),
    image,
    ...(appArgs.length > 0 ? ['--', ...appArgs] : []),
  ]
}
