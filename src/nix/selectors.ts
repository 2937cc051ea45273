// Pure rules for turning what the user typed into something `nix-env` installs.
import { editDistance } from '../util/edit-distance.js'

/** One package as `nix-env -qaP --json` lists it. */
export interface AvailablePackage {
  attrPath: string
  name: string
  pname: string
}

export const STORE_DIR = process.env.NIX_STORE_DIR ?? '/nix/store'

export function isStorePath(arg: string): boolean {
  return arg.startsWith(`${STORE_DIR}/`)
}

/** Could `arg` be an attribute path (`etcd`, `nixos.etcd`)? `etcd-3.4.23` cannot: `3` starts no identifier. */
export function looksLikeAttrPath(arg: string): boolean {
  return /^[A-Za-z_][\w'-]*(\.[A-Za-z_][\w'-]*)*$/.test(arg)
}

/**
 * The expression nix-env should read: the user's `-f`, else `<nixpkgs>` when NIX_PATH names it,
 * else undefined (nix-env's own default, `~/.nix-defexpr`).
 */
export function defaultExpression(file: string | undefined, nixPath: string | undefined): string | undefined {
  if (file) return file
  const namesNixpkgs = (nixPath ?? '')
    .split(':')
    .some((entry) => entry.startsWith('nixpkgs=') || /(^|\/)nixpkgs\/?$/.test(entry))
  return namesNixpkgs ? '<nixpkgs>' : undefined
}

/**
 * The attribute path that installs `selector`, as nix-env -i would choose: an exact attribute
 * path, else an exact name (`etcd-3.4.23`), else the highest version with that pname (`etcd`).
 */
export function matchPackage(selector: string, available: readonly AvailablePackage[]): string | undefined {
  const byAttr = available.find((p) => p.attrPath === selector)
  if (byAttr) return byAttr.attrPath
  const byName = available.filter((p) => p.name === selector)
  if (byName.length > 0) return byName.map((p) => p.attrPath).sort()[0]
  const byPname = available.filter((p) => p.pname === selector)
  byPname.sort((a, b) => compareVersions(versionOf(b), versionOf(a)) || a.attrPath.localeCompare(b.attrPath))
  return byPname[0]?.attrPath
}

function versionOf(p: AvailablePackage): string {
  return p.name.slice(p.pname.length + 1)
}

/** Nix's version order (builtins.compareVersions), close enough for picking the newest. */
export function compareVersions(a: string, b: string): number {
  const partsA = a.split(/[.-]/)
  const partsB = b.split(/[.-]/)
  for (let i = 0; i < Math.max(partsA.length, partsB.length); i++) {
    const x = partsA[i] ?? ''
    const y = partsB[i] ?? ''
    const nx = /^\d+$/.test(x)
    const ny = /^\d+$/.test(y)
    const order = nx && ny ? Number(x) - Number(y) : nx !== ny ? (nx ? 1 : -1) : x.localeCompare(y)
    if (order !== 0) return Math.sign(order)
  }
  return 0
}

/** Up to five packages whose attribute path or name is close to `selector`, for the error message. */
export function closeMatches(selector: string, available: readonly AvailablePackage[]): string[] {
  const wanted = selector.toLowerCase()
  const scored = available.map((p) => {
    const candidates = [p.attrPath, p.pname, p.name].map((c) => c.toLowerCase())
    const distance = Math.min(...candidates.map((c) => editDistance(wanted, c)))
    const contains = candidates.some((c) => c.includes(wanted) || wanted.includes(c))
    return { label: `${p.attrPath} (${p.name})`, score: contains ? Math.min(distance, 1) : distance }
  })
  const limit = Math.max(2, Math.floor(wanted.length / 3))
  return scored
    .filter((s) => s.score <= limit)
    .sort((a, b) => a.score - b.score || a.label.localeCompare(b.label))
    .slice(0, 5)
    .map((s) => s.label)
}

/** Parses `nix-env -qaP --json` output. */
export function parseAvailable(json: string): AvailablePackage[] {
  const listing = JSON.parse(json) as Record<string, { name: string; pname?: string }>
  return Object.entries(listing).map(([attrPath, info]) => ({
    attrPath,
    name: info.name,
    pname: info.pname ?? info.name.replace(/-\d.*$/, ''),
  }))
}
