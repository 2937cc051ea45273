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

/**
 * What every Nix call that evaluates gets, in Nix's own spelling: `-I PATH`, `--arg NAME EXPR`,
 * `--argstr NAME VALUE`, `--option NAME VALUE`, `--show-trace`.
 */
export interface NixOptions {
  include: string[]
  arg: Record<string, string>
  argstr: Record<string, string>
  option: Record<string, string>
  showTrace: boolean
}

export const NO_NIX_OPTIONS: NixOptions = { include: [], arg: {}, argstr: {}, option: {}, showTrace: false }

/**
 * The options as Nix's command lines take them. Flakes take no `--arg`/`--argstr` (Nix refuses
 * them there itself), and `--option` also reaches the calls that only build.
 */
export function nixOptionArgs(options: NixOptions, use: 'evaluate' | 'flake' | 'build' = 'evaluate'): string[] {
  const pairs = (flag: string, values: Record<string, string>) =>
    Object.entries(values).flatMap(([name, value]) => [flag, name, value])
  const optionArgs = pairs('--option', options.option)
  if (use === 'build') return optionArgs
  return [
    ...options.include.flatMap((path) => ['-I', path]),
    ...(use === 'evaluate' ? [...pairs('--arg', options.arg), ...pairs('--argstr', options.argstr)] : []),
    ...optionArgs,
    ...(options.showTrace ? ['--show-trace'] : []),
  ]
}

/** A flake reference: `FLAKEREF#ATTR`, or a URL-like reference (`path:./dir`, `git+file:...`). */
export function isFlakeRef(arg: string): boolean {
  return !isStorePath(arg) && (arg.includes('#') || /^[a-z][a-z0-9+.-]*:/.test(arg))
}

/** A store derivation, or one output of it (`...-etcd-3.4.23.drv`, `...drv!bin`): realised first. */
export function isDerivation(arg: string): boolean {
  return isStorePath(arg) && /\.drv(![\w-]+)?$/.test(arg)
}

/**
 * A path on disk (`./result`, `/tmp/link`): attribute paths and package names never hold a `/`.
 * It must lead into the store: a nix-build out-link, or any symbolic link there.
 */
export function isFilePath(arg: string): boolean {
  return !isStorePath(arg) && !isFlakeRef(arg) && arg.includes('/')
}

/** `/nix/store/<hash>-etcd/bin/etcd` -> `/nix/store/<hash>-etcd`: the store path a path lies in. */
export function topStorePath(path: string): string {
  return path
    .split('/')
    .slice(0, STORE_DIR.split('/').length + 1)
    .join('/')
}
