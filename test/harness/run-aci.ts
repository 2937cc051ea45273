// Runs an ACI the way rkt's fly stage1 does, for tests: unpack the image, bind each mount point's
// host volume (from a .mounts file) at its path, run app.exec with app.environment in
// app.workingDirectory. bubblewrap stands in for rkt, which no registry here has.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Volume {
  name: string
  kind: string
  source: string
  readOnly: boolean
}

interface Manifest {
  app?: {
    exec?: string[]
    environment?: Array<{ name: string; value: string }>
    workingDirectory?: string
    mountPoints?: Array<{ name: string; path: string; readOnly?: boolean }>
  }
}

/** rkt's default PATH for apps that set none. */
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

/** Parses the one-line `.mounts` format: `--volume=NAME,kind=host,source=PATH[,readOnly=true] ...`. */
export function parseMountsFile(text: string): Volume[] {
  return text
    .split(/\s+/)
    .filter(Boolean)
    .map((arg) => {
      const match = /^--volume=([^,]+),(.*)$/.exec(arg)
      if (!match) throw new Error(`not a --volume argument: ${arg}`)
      const fields = new Map(
        match[2]!.split(',').map((field) => {
          const at = field.indexOf('=')
          if (at <= 0) throw new Error(`malformed field '${field}' in ${arg}`)
          return [field.slice(0, at), field.slice(at + 1)] as const
        }),
      )
      const kind = fields.get('kind')
      const source = fields.get('source')
      if (!kind || !source) throw new Error(`${arg} needs kind= and source=`)
      return { name: match[1]!, kind, source, readOnly: fields.get('readOnly') === 'true' }
    })
}

export interface RunOptions {
  /** Path of the .mounts file whose volumes fill the image's mount points. */
  mounts?: string
  /** Appended to app.exec, as `rkt run IMAGE -- ARGS` does. */
  args?: string[]
  timeoutMs?: number
}

export interface RunResult {
  status: number | null
  stdout: string
  stderr: string
}

interface Prepared {
  argv: string[]
  cleanup(): void
}

/** Unpacks the image and works out the bwrap command line; throws when a mount point has no volume. */
function prepare(image: string, options: RunOptions): Prepared {
  const dir = mkdtempSync(join(tmpdir(), 'nix2aci-run-'))
  const cleanup = () => rmSync(dir, { recursive: true, force: true })
  try {
    execFileSync('tar', ['-xf', image, '-C', dir])
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest'), 'utf8')) as Manifest
    const app = manifest.app ?? {}
    const volumes = options.mounts ? parseMountsFile(readFileSync(options.mounts, 'utf8')) : []
    const mountPoints = app.mountPoints ?? []
    for (const volume of volumes) {
      if (!mountPoints.some((mount) => mount.name === volume.name))
        throw new Error(`volume '${volume.name}' fills no mount point of the image`)
    }
    const binds = mountPoints.flatMap((mount) => {
      const volume = volumes.find((v) => v.name === mount.name)
      if (!volume) throw new Error(`mount point '${mount.name}' (${mount.path}) has no volume`)
      return [volume.readOnly || mount.readOnly ? '--ro-bind' : '--bind', volume.source, mount.path]
    })
    const environment = [{ name: 'PATH', value: DEFAULT_PATH }, ...(app.environment ?? [])]
    const argv = [
      '--bind', join(dir, 'rootfs'), '/',
      ...binds,
      '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp',
      '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--die-with-parent',
      '--clearenv', ...environment.flatMap((v) => ['--setenv', v.name, v.value]),
      '--chdir', app.workingDirectory ?? '/',
      '--', ...(app.exec ?? []), ...(options.args ?? []),
    ]
    return { argv, cleanup }
  } catch (error) {
    cleanup()
    throw error
  }
}

/** Runs the image's app to completion and returns what it printed. */
export async function runAci(image: string, options: RunOptions = {}): Promise<RunResult> {
  const { argv, cleanup } = prepare(image, options)
  try {
    const child = spawn('bwrap', argv, { stdio: ['ignore', 'pipe', 'pipe'] })
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000)
    const output = collect(child)
    const status = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject)
      child.on('close', (code) => resolve(code))
    }).finally(() => clearTimeout(timer))
    return { status, ...output() }
  } finally {
    cleanup()
  }
}

export interface RunningAci {
  process: ChildProcess
  output(): { stdout: string; stderr: string }
  /** Stops the app (its whole process tree) and removes the unpacked image. */
  stop(): Promise<void>
}

/** Starts a long-running app, such as a server a test then talks to over loopback. */
export async function startAci(image: string, options: RunOptions = {}): Promise<RunningAci> {
  const { argv, cleanup } = prepare(image, options)
  const child = spawn('bwrap', argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const output = collect(child)
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()))
  return {
    process: child,
    output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(-child.pid!, 'SIGTERM')
        const killer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 5_000)
        await exited
        clearTimeout(killer)
      }
      cleanup()
    },
  }
}

function collect(child: ChildProcess): () => { stdout: string; stderr: string } {
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text))
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text))
  return () => ({ stdout, stderr })
}
