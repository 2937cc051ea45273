// The files that travel with an image, named from the image's own path.
import { access } from 'node:fs/promises'

/** `<name>.mounts`: the rkt run volumes of a thin image (or of a fat image with host volumes). */
export function mountsFileOf(image: string): string {
  return image.replace(/\.aci$/, '') + '.mounts'
}

/** Whether a path exists (for the files beside an image and the host paths its mounts name). */
export function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  )
}

/** `<name>.aci.asc`: the detached signature rkt looks for beside the image. */
export function signatureFileOf(image: string): string {
  return `${image}.asc`
}
