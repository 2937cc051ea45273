// Nix's own transport for a thin image's closure: `nix-store --export` into a file or pipe, `nix-store --import`
// from a stream, `nix-copy-closure` over SSH; and the profile that roots an imported closure.
import { spawn } from 'node:child_process'
import { killOnAbort } from '../util/cancel.js'
import { UserError } from '../util/errors.js'
import { CommandError, run } from '../util/exec.js'
import { nixError } from './profile.js'

/** `nix-store --export PATHS`, written by nix-store itself to `fd` (no copy through node). */
export function exportClosure(paths: readonly string[], fd: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = killOnAbort(
      spawn('nix-store', ['--export', ...paths], { stdio: ['ignore', fd, 'pipe'], signal }),
      signal,
    )
    let stderr = ''
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text))
    child.on('error', (error) => {
      if (error.name !== 'AbortError') reject(error)
    })
    child.on('close', (code) => {
      if (signal.aborted) reject(signal.reason)
      else if (code === 0) resolve()
      else reject(nixError('nix-store --export failed', new CommandError('nix-store', code, stderr)))
    })
  })
}

/**
 * `nix-store --import` reading from `fd` where it stands to its end (no copy through node); resolves
 * with the paths it imported. A stream that ends before nix-store's end marker rejects with `truncated()`.
 */
export function importClosure(fd: number, truncated: () => Error, signal: AbortSignal): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = killOnAbort(spawn('nix-store', ['--import'], { stdio: [fd, 'pipe', 'pipe'], signal }), signal)
    let stdout = ''
    let stderr = ''
    child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text))
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text))
    child.on('error', (error) => {
      if (error.name !== 'AbortError') reject(error)
    })
    child.on('close', (code) => {
      if (signal.aborted) reject(signal.reason)
      else if (code === 0) resolve(stdout.split('\n').filter(Boolean))
      else if (/^error: unexpected end-of-file$/m.test(stderr)) reject(truncated())
      else reject(nixError('nix-store --import failed', new CommandError('nix-store', code, stderr)))
    })
  })
}

/** Makes `profile` point at `storePath` (a new generation; nix-env registers it as a GC root). */
export async function setProfile(profile: string, storePath: string, signal: AbortSignal): Promise<void> {
  await run('nix-env', ['-p', profile, '--set', storePath], { signal }).catch((error) => {
    throw nixError(`nix-env failed to set the profile ${profile}`, error)
  })
}

/** The paths of `paths` that are not valid in this store (`nix-store --check-validity --print-invalid`). */
export async function invalidPaths(paths: readonly string[], signal: AbortSignal): Promise<string[]> {
  if (paths.length === 0) return []
  const { stdout } = await run('nix-store', ['--check-validity', '--print-invalid', ...paths], { signal }).catch(
    (error) => {
      throw nixError('nix-store --check-validity failed', error)
    },
  )
  return stdout.split('\n').filter(Boolean)
}

/**
 * The options nix-copy-closure gives ssh: NIX_SSHOPTS split at whitespace, as Nix splits it (no quotes).
 * Copy's own ssh steps take the same, so a port or key in it reaches every step.
 */
export function nixSshOptions(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.NIX_SSHOPTS ?? '').split(/\s+/).filter(Boolean)
}

/** `nix-copy-closure --to HOST PATHS`: the command line, for copy and its --dry-run. */
export function copyClosureCommand(host: string, paths: readonly string[]): string[] {
  if (host.startsWith('-')) throw new UserError(`not a host name: ${host}`)
  return ['nix-copy-closure', '--to', host, ...paths]
}
