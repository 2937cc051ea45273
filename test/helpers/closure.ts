// Building fixture packages and running programs with nothing but a given set of store paths.
import { execFileSync, spawnSync } from 'node:child_process'
import { basename } from 'node:path'
import { FRESH_SYSTEM_DIRS } from '../harness/run-aci.js'
import { fixtures } from './cli.js'

/**
 * Builds attributes of a Nix file (default: the fixture set) without GC roots and returns their
 * store paths, in the order given. `args` go to nix-build as they are (`--arg`, `--argstr`, `-E`).
 */
export function nixBuild(attrs: string[], options: { file?: string; args?: string[] } = {}): string[] {
  const attrArgs = attrs.flatMap((attr) => ['-A', attr])
  const stdout = execFileSync(
    'nix-build',
    [options.file ?? fixtures, '--no-out-link', ...attrArgs, ...(options.args ?? [])],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  return stdout.trim().split('\n')
}

/** Every store path `storePath` needs at run time (`nix-store -qR`, itself included), sorted. */
export function closureOf(storePath: string): string[] {
  return execFileSync('nix-store', ['-qR', storePath], { encoding: 'utf8' }).trim().split('\n').sort()
}

/** `/nix/store/<hash>-etcd-3.4.23` -> `etcd-3.4.23`. */
export function storeName(storePath: string): string {
  return basename(storePath).slice(33)
}

export interface ClosureRun {
  status: number | null
  stdout: string
  stderr: string
}

/**
 * Runs `argv` under bubblewrap in a root file system holding nothing but read-only binds of
 * `paths` (bwrap makes their parent directories on a tmpfs root), a fresh /proc, /dev and /tmp,
 * no network, an empty environment plus `env`, in /tmp.
 */
export function runInClosure(
  paths: string[],
  argv: string[],
  options: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {},
): ClosureRun {
  const binds = paths.flatMap((path) => ['--ro-bind', path, path])
  const env = Object.entries(options.env ?? {}).flatMap(([name, value]) => ['--setenv', name, value])
  const result = spawnSync(
    'bwrap',
    [
      '--unshare-all',
      '--die-with-parent',
      '--clearenv',
      ...env,
      ...binds,
      ...FRESH_SYSTEM_DIRS,
      '--chdir',
      '/tmp',
      ...argv,
    ],
    { encoding: 'utf8', input: options.input ?? '', timeout: options.timeoutMs ?? 60_000 },
  )
  if (result.error) throw result.error
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

const nixVersion = /(\d+)\.(\d+)/.exec(spawnSync('nix', ['--version'], { encoding: 'utf8' }).stdout ?? '')
/** Flakes came in Nix 2.4 (behind experimental features until they are stable). */
export const nixHasFlakes = nixVersion !== null && Number(nixVersion[1]) * 1000 + Number(nixVersion[2]) >= 2004
