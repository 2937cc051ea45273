// The files that travel with an image, named from the image's own path.

/** `<name>.mounts`: the rkt run volumes of a thin image (or of a fat image with host volumes). */
export function mountsFileOf(image: string): string {
  return image.replace(/\.aci$/, '') + '.mounts'
}

/** `<name>.aci.asc`: the detached signature rkt looks for beside the image. */
export function signatureFileOf(image: string): string {
  return `${image}.asc`
}
