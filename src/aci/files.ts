// The files that travel with an image, named from the image's own path (`.mounts`: see mounts.ts).
import { access } from 'node:fs/promises'

/** Whether a path exists (for the files beside an image and the host paths its mounts name). */
export function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  )
}

/** Those of `paths` that do not exist, in their order. */
export async function missingPaths(paths: readonly string[]): Promise<string[]> {
  const present = await Promise.all(paths.map(exists))
  return paths.filter((_, i) => !present[i])
}

/** `<name>.aci.asc`: the detached signature rkt looks for beside the image. */
export function signatureFileOf(image: string): string {
  return `${image}.asc`
}

/** `<name>.profile` beside `<name>.aci`: a thin image's Nix profile, the GC root of its closure. */
export function profileFileOf(image: string): string {
  return image.replace(/\.aci$/, '') + '.profile'
}
