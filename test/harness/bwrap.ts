// The bubblewrap command line that runs an unpacked image's app as rkt's fly stage1 would.
import { readFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { fillMountPoints, parseMountsFile, type Volume } from './mounts.js'
import type { UnpackedAci } from './unpack.js'

/** What rkt's stage1 gives every app, and bwrap gives here: a fresh /proc, /dev and /tmp. */
export const FRESH_SYSTEM_DIRS = ['--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp']

/** rkt's PATH for apps that set none. */
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

/** How to run the app, as `rkt run`'s options say it. */
export interface LaunchOptions {
  /** The .mounts file whose volumes fill the image's mount points, or the volumes themselves. */
  mounts?: string | Volume[] | null
  /** Appended to the exec, as `rkt run IMAGE -- ARGS` does. */
  args?: string[]
  /** Replaces app.exec, as `rkt run --exec` does. */
  exec?: string[]
  /** Set after app.environment, overriding it, as `rkt run --set-env` does. */
  env?: Record<string, string>
  /** 'host' (default) shares the host's network, so tests reach servers on 127.0.0.1. */
  network?: 'host' | 'none'
  /**
   * Mount points with no volume get an empty writable directory, as rkt >= 1.0 does;
   * by default they are an error, so a thin image missing its store paths fails loudly.
   */
  ignoreMissingVolumes?: boolean
}

/** Works out the bwrap command line for an unpacked image; throws on volumes that do not fit. */
export function bwrapArgs(image: string, unpacked: UnpackedAci, options: LaunchOptions): string[] {
  const { manifest, rootfs } = unpacked
  const app = manifest.app
  const exec = [...(options.exec ?? app?.exec ?? []), ...(options.args ?? [])]
  if (exec.length === 0) throw new Error(`${image}: nothing to run (no app.exec and no exec option)`)

  const volumes =
    typeof options.mounts === 'string' ? parseMountsFile(readFileSync(options.mounts, 'utf8')) : (options.mounts ?? [])
  const binds = fillMountPoints(image, app?.mountPoints ?? [], volumes, options.ignoreMissingVolumes).flatMap(
    (mount) =>
      mount.source === undefined
        ? ['--tmpfs', mount.path]
        : [mount.readOnly ? '--ro-bind' : '--bind', mount.source, mount.path],
  )

  const env = new Map<string, string>([
    ['PATH', DEFAULT_PATH],
    ['AC_APP_NAME', basename(manifest.name)],
  ])
  for (const { name, value } of app?.environment ?? []) env.set(name, value)
  for (const [name, value] of Object.entries(options.env ?? {})) env.set(name, value)

  const uid = resolveId(rootfs, 'passwd', app?.user ?? '0')
  const gid = resolveId(rootfs, 'group', app?.group ?? '0')
  // bwrap as root cannot drop to another user without a user namespace. In one, the app has that
  // uid and gid, but root-owned files look like its own: writes rkt would refuse can succeed here.
  const identity = uid === 0 && gid === 0 ? [] : ['--unshare-user', '--uid', String(uid), '--gid', String(gid)]

  return [
    ...identity,
    '--bind',
    rootfs,
    '/',
    ...FRESH_SYSTEM_DIRS,
    ...binds,
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    ...(options.network === 'none' ? ['--unshare-net'] : []),
    '--die-with-parent',
    '--clearenv',
    ...[...env].flatMap(([name, value]) => ['--setenv', name, value]),
    '--chdir',
    app?.workingDirectory || '/',
    '--',
    ...exec,
  ]
}

/** A numeric id as is; a name looked up in the image's /etc/passwd or /etc/group, as rkt does. */
function resolveId(rootfs: string, table: 'passwd' | 'group', id: string): number {
  if (/^\d+$/.test(id)) return Number(id)
  if (id === 'root') return 0
  let lines: string[] = []
  try {
    lines = readFileSync(join(rootfs, 'etc', table), 'utf8').split('\n')
  } catch {
    // no such table in the image: fall through to the error
  }
  const entry = lines.map((line) => line.split(':')).find((fields) => fields[0] === id)
  if (!entry || !/^\d+$/.test(entry[2] ?? '')) throw new Error(`${id} is not in the image's /etc/${table}`)
  return Number(entry[2])
}
