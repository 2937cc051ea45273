// Runs an ACI the way rkt's fly stage1 does, for tests: unpack the image, bind each mount point's
// host volume (from a .mounts file) at its path, run app.exec with app.environment in
// app.workingDirectory. bubblewrap stands in for rkt, which no registry here has.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, isAbsolute, join } from 'node:path'
import { promisify } from 'node:util'
import { liveProcesses } from '../helpers/proc.js'

const execFileAsync = promisify(execFile)

/** One `--volume=` of a .mounts file. `readOnly` absent means "as the mount point says", as in rkt. */
export interface Volume {
  name: string
  kind: 'host'
  source: string
  readOnly?: boolean
}

export interface MountPoint {
  name: string
  path: string
  readOnly?: boolean
}

export interface App {
  exec?: string[]
  user: string
  group: string
  environment?: Array<{ name: string; value: string }>
  workingDirectory?: string
  mountPoints?: MountPoint[]
  [key: string]: unknown
}

export interface ImageManifest {
  acKind: string
  acVersion: string
  name: string
  labels?: Array<{ name: string; value: string }>
  app?: App
  [key: string]: unknown
}

/** What rkt's stage1 gives every app, and bwrap gives here: a fresh /proc, /dev and /tmp. */
export const FRESH_SYSTEM_DIRS = ['--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp']

/** rkt's PATH for apps that set none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

/**
 * An AC Name as appc's parser (types.ACName), and so rkt, takes it for volume and mount point
 * names: lower-case alphanumerics and dashes, a dash at neither end; no '.', '_', '~' or '/'.
 */
export const AC_NAME = /^[a-z0-9]+(-+[a-z0-9]+)*$/
/** appc's ValidACName, the regular expression of the spec itself: one dash at a time. */
export const APPC_VALID_AC_NAME = /^[a-z0-9]+([-][a-z0-9]+)*$/
// Go's strconv.ParseBool, which appc uses for readOnly.
const BOOLS: Record<string, boolean> = Object.fromEntries([
  ...['1', 't', 'T', 'true', 'TRUE', 'True'].map((s) => [s, true]),
  ...['0', 'f', 'F', 'false', 'FALSE', 'False'].map((s) => [s, false]),
])

/**
 * Parses the one-line `.mounts` format, `--volume=NAME,kind=host,source=PATH[,readOnly=BOOL] ...`,
 * refusing what appc's VolumeFromString refuses (unknown or repeated keys, relative sources).
 */
export function parseMountsFile(text: string): Volume[] {
  const volumes = text
    .split(/\s+/)
    .filter(Boolean)
    .map((arg): Volume => {
      const match = /^--volume=([^,]*)(?:,(.*))?$/.exec(arg)
      if (!match) throw new Error(`not a --volume argument: ${arg}`)
      const name = match[1]!
      if (!AC_NAME.test(name)) throw new Error(`${arg}: '${name}' is not a valid volume name`)
      const fields = new Map<string, string>()
      for (const field of (match[2] ?? '').split(',').filter(Boolean)) {
        const at = field.indexOf('=')
        if (at <= 0) throw new Error(`${arg}: malformed field '${field}'`)
        const key = field.slice(0, at)
        if (!['kind', 'source', 'readOnly'].includes(key)) throw new Error(`${arg}: unknown volume parameter '${key}'`)
        if (fields.has(key)) throw new Error(`${arg}: '${key}' given twice`)
        fields.set(key, field.slice(at + 1))
      }
      const kind = fields.get('kind')
      const source = fields.get('source')
      if (kind !== 'host') throw new Error(`${arg}: kind must be host (got ${kind ?? 'none'})`)
      if (!source || !isAbsolute(source)) throw new Error(`${arg}: source must be an absolute path`)
      const volume: Volume = { name, kind, source }
      const readOnly = fields.get('readOnly')
      if (readOnly !== undefined) {
        if (!(readOnly in BOOLS)) throw new Error(`${arg}: readOnly must be true or false`)
        volume.readOnly = BOOLS[readOnly]!
      }
      return volume
    })
  const names = volumes.map((v) => v.name)
  const repeated = names.find((name, i) => names.indexOf(name) !== i)
  if (repeated) throw new Error(`volume '${repeated}' given twice`)
  return volumes
}

export type Compression = 'gzip' | 'bzip2' | 'xz' | 'none'

/** The compressions the appc spec allows, told apart by magic bytes as rkt does; anything else is refused. */
export async function detectCompression(image: string): Promise<Compression> {
  const file = await open(image, 'r')
  const head = Buffer.alloc(262)
  try {
    await file.read(head, 0, head.length, 0)
  } finally {
    await file.close()
  }
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip'
  if (head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2'
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz'
  if (head.subarray(257, 262).toString('latin1') === 'ustar') return 'none'
  throw new Error(`${image}: not an ACI (neither a tar nor a gzip, bzip2 or xz one)`)
}

const TAR_FLAG: Record<Compression, string[]> = { gzip: ['-z'], bzip2: ['-j'], xz: ['-J'], none: [] }

/** The image's manifest, read without unpacking the rootfs. */
export async function readAci(image: string): Promise<{ manifest: ImageManifest; compression: Compression }> {
  const compression = await detectCompression(image)
  const { stdout } = await execFileAsync('tar', ['-x', ...TAR_FLAG[compression], '-O', '-f', image, 'manifest'], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  }).catch((error: Error) => {
    throw new Error(`${image}: no manifest: ${error.message}`)
  })
  return { manifest: parseManifest(image, stdout), compression }
}

function parseManifest(image: string, text: string): ImageManifest {
  const manifest = JSON.parse(text) as ImageManifest
  if (manifest.acKind !== 'ImageManifest')
    throw new Error(`${image}: manifest acKind is ${manifest.acKind}, not ImageManifest`)
  return manifest
}

export interface UnpackedAci {
  dir: string
  rootfs: string
  manifest: ImageManifest
  compression: Compression
  /** Removes the unpacked image; safe to call twice. */
  remove(): void
}

/** Unpacks the image into a fresh directory under `parent`, keeping symlinks, modes and numeric owners. */
export async function unpackAci(image: string, parent = tmpdir()): Promise<UnpackedAci> {
  const dir = mkdtempSync(join(parent, 'nix2aci-run-'))
  const remove = () => rmSync(dir, { recursive: true, force: true })
  try {
    const compression = await detectCompression(image)
    // As root tar keeps owners and modes; --numeric-owner stops it mapping names through the host's /etc/passwd.
    await execFileAsync('tar', ['-x', ...TAR_FLAG[compression], '--numeric-owner', '-p', '-f', image, '-C', dir])
    const manifest = parseManifest(image, readFileSync(join(dir, 'manifest'), 'utf8'))
    return { dir, rootfs: join(dir, 'rootfs'), manifest, compression, remove }
  } catch (error) {
    remove()
    throw error
  }
}

export interface RunOptions {
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
  /** runAci only: kill the app after this long (default 60 s); the result says `timedOut`. */
  timeoutMs?: number
  /** Where to unpack (default the system temp directory). */
  tmpDir?: string
}

export interface RunResult {
  status: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  timedOut: boolean
}

/** Works out the bwrap command line for an unpacked image; throws on volumes that do not fit. */
function bwrapArgs(image: string, unpacked: UnpackedAci, options: RunOptions): string[] {
  const { manifest, rootfs } = unpacked
  const app = manifest.app
  const exec = [...(options.exec ?? app?.exec ?? []), ...(options.args ?? [])]
  if (exec.length === 0) throw new Error(`${image}: nothing to run (no app.exec and no exec option)`)

  const volumes =
    typeof options.mounts === 'string' ? parseMountsFile(readFileSync(options.mounts, 'utf8')) : (options.mounts ?? [])
  const mountPoints = app?.mountPoints ?? []
  const strays = volumes.filter((v) => !mountPoints.some((mp) => mp.name === v.name))
  if (strays.length)
    throw new Error(`${image}: volumes fill no mount point: ${strays.map((v) => `'${v.name}'`).join(', ')}`)
  const missing = mountPoints.filter((mp) => !volumes.some((v) => v.name === mp.name))
  if (missing.length && !options.ignoreMissingVolumes) {
    const list = missing.map((mp) => `mount point '${mp.name}' (${mp.path}) has no volume`).join('; ')
    throw new Error(`${image}: ${list}`)
  }
  // Parents before children, so a mount point below another is not hidden by it.
  const binds = [...mountPoints]
    .sort((a, b) => (a.path < b.path ? -1 : 1))
    .flatMap((mp) => {
      const volume = volumes.find((v) => v.name === mp.name)
      if (!volume) return ['--tmpfs', mp.path]
      // rkt: the volume's readOnly, when given, overrides the mount point's.
      return [(volume.readOnly ?? mp.readOnly ?? false) ? '--ro-bind' : '--bind', volume.source, mp.path]
    })

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

// Apps still running when the test process exits are killed with it.
const live = new Set<ChildProcess>()
process.once('exit', () => live.forEach((child) => killGroup(child, 'SIGKILL')))

/**
 * Signals bwrap's process group (it runs detached, in its own): bwrap, its pid-namespace init and
 * the app; what escaped the group dies with the namespace when --die-with-parent kills the init.
 */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal)
  } catch {
    // already exited
  }
}

/**
 * Processes of a process group that have not exited. Zombies do not count: bwrap exits as soon as
 * its pid-namespace init reports, leaving the init to PID 1, which may reap it only much later.
 */
export function runningInGroup(pgid: number): number[] {
  return liveProcesses()
    .filter((p) => p.group === pgid)
    .map((p) => p.pid)
}

/**
 * Waits until bwrap's group has no running process, as `rkt run` returns only once stage1 is gone:
 * bwrap can exit while its pid-namespace init is still tearing the namespace down. What is left
 * after `graceMs` gets SIGKILL.
 */
async function groupGone(child: ChildProcess, graceMs = 2_000): Promise<void> {
  const deadline = Date.now() + graceMs
  while (runningInGroup(child.pid!).length > 0) {
    if (Date.now() > deadline) killGroup(child, 'SIGKILL')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

export interface RunningAci {
  process: ChildProcess
  /** The unpacked image; stop() removes it. */
  dir: string
  manifest: ImageManifest
  output(): { stdout: string; stderr: string }
  /** Settles when the app and every process it started have exited, by themselves or by stop(). */
  exited: Promise<RunResult>
  /** Stops the app's whole process tree (SIGTERM, SIGKILL after `graceMs`) and removes the unpacked image. */
  stop(graceMs?: number): Promise<RunResult>
}

/** Starts the image's app and returns at once: for servers a test then talks to over loopback. */
export async function startAci(image: string, options: RunOptions = {}): Promise<RunningAci> {
  const unpacked = await unpackAci(image, options.tmpDir)
  let child: ChildProcess
  try {
    const argv = bwrapArgs(image, unpacked, options)
    // Detached: bwrap and everything it starts form one process group, which stop() kills.
    child = spawn('bwrap', argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  } catch (error) {
    unpacked.remove()
    throw error
  }
  live.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text))
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text))
  let timedOut = false
  const exited = new Promise<RunResult>((resolve) => {
    let settled = false
    const done = (status: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return
      settled = true
      live.delete(child)
      unpacked.remove()
      resolve({ status, signal, stdout, stderr, timedOut })
    }
    child.on('error', (error) => {
      stderr += `${error.message}\n`
      done(null, null)
    })
    child.on('close', (status, signal) => void groupGone(child).then(() => done(status, signal)))
  })
  const timer =
    options.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true
          killGroup(child, 'SIGKILL')
        }, options.timeoutMs)
  void exited.then(() => clearTimeout(timer))
  return {
    process: child,
    dir: unpacked.dir,
    manifest: unpacked.manifest,
    output: () => ({ stdout, stderr }),
    exited,
    async stop(graceMs = 5_000) {
      if (child.exitCode === null && child.signalCode === null) {
        killGroup(child, 'SIGTERM')
        const killer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs)
        await exited
        clearTimeout(killer)
      }
      return exited
    },
  }
}

/** Runs the image's app to completion (killed after `timeoutMs`, default 60 s) and returns what it printed. */
export async function runAci(image: string, options: RunOptions = {}): Promise<RunResult> {
  const running = await startAci(image, { timeoutMs: 60_000, ...options })
  return running.exited
}

/**
 * Polls `url` until it answers 2xx or `timeoutMs` passes; gives up at once, with the app's
 * output, if `server` exits first.
 */
export async function waitForHttp(
  url: string,
  options: { timeoutMs?: number; server?: RunningAci } = {},
): Promise<Response> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000)
  let exited: RunResult | undefined
  void options.server?.exited.then((result) => (exited = result))
  let last = 'no answer'
  for (;;) {
    if (exited) throw new Error(`server exited (status ${exited.status}) before ${url} answered:\n${exited.stderr}`)
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) })
      if (response.ok) return response
      last = `HTTP ${response.status}`
    } catch (error) {
      last = (error as Error).message
    }
    if (Date.now() > deadline)
      throw new Error(`${url} did not answer within ${options.timeoutMs ?? 20_000} ms: ${last}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
