// The appc naming rules (appc spec, schema/types), checked here so that bad input is refused
// before any Nix work and both engines can rely on valid names.

const AC_IDENTIFIER_CHARS = /[^a-z0-9\-._~/]/
const AC_IDENTIFIER_EDGES = /(^[-._~/]+)|([-._~/]+$)/
const AC_NAME_CHARS = /[^a-z0-9-]/
const AC_NAME_EDGES = /(^-+)|(-+$)/

/** Why `value` is not a valid AC Identifier (image names, label names), or undefined when it is. */
export function acIdentifierProblem(value: string): string | undefined {
  if (value === '') return 'ACIdentifier cannot be empty'
  if (AC_IDENTIFIER_CHARS.test(value))
    return 'ACIdentifier must contain only lower case alphanumeric characters plus "-._~/"'
  if (AC_IDENTIFIER_EDGES.test(value))
    return 'ACIdentifier must start and end with only lower case alphanumeric characters'
  return undefined
}

/** Why `value` is not a valid AC Name (mount point and volume names), or undefined when it is. */
export function acNameProblem(value: string): string | undefined {
  if (value === '') return 'ACName cannot be empty'
  if (AC_NAME_CHARS.test(value)) return 'ACName must contain only lower case alphanumeric characters plus "-"'
  if (AC_NAME_EDGES.test(value)) return 'ACName must start and end with only lower case alphanumeric characters'
  return undefined
}

/**
 * A valid AC Name made from arbitrary text: lower-cased, every run of other characters
 * turned into one "-", edges trimmed. `nix-store` names may hold "+", "_", "." and upper case.
 */
export function toAcName(text: string): string {
  const name = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
  return name === '' ? 'x' : name
}

/** appc's spelling of the architecture label, from `uname -m` (appc spec, "arch" label). */
export function appcArch(machine: string): string {
  const spelling: Record<string, string> = {
    x86_64: 'amd64',
    amd64: 'amd64',
    i386: 'i386',
    i486: 'i386',
    i586: 'i386',
    i686: 'i386',
    aarch64: 'aarch64',
    arm64: 'aarch64',
    aarch64_be: 'aarch64_be',
    armv6l: 'armv6l',
    armv7l: 'armv7l',
    armv7b: 'armv7b',
    ppc64: 'ppc64',
    ppc64le: 'ppc64le',
    s390x: 's390x',
  }
  return spelling[machine] ?? machine
}
