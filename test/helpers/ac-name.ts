// The AC Name rules as appc and rkt apply them, for tests that check names nix2aci makes or reads.

/**
 * An AC Name as appc's parser (types.ACName), and so rkt, takes it for volume and mount point
 * names: lower-case alphanumerics and dashes, a dash at neither end; no '.', '_', '~' or '/'.
 */
export const AC_NAME = /^[a-z0-9]+(-+[a-z0-9]+)*$/
/** appc's ValidACName, the regular expression of the spec itself: one dash at a time. */
export const APPC_VALID_AC_NAME = /^[a-z0-9]+([-][a-z0-9]+)*$/
