// `nix2aci run`: rkt run with the image's own volumes and the user's rkt options, its layers
// fetched first, its volumes in a pod manifest when they do not fit on a command line.
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { missingPaths } from '../aci/files.js'
import { readManifest } from '../aci/inspect.js'
import { layerFilesOfImage } from '../aci/layers.js'
import type { ImageManifest } from '../aci/manifest.js'
import { rktRun, type PodRun, type RunRequest } from '../aci/rkt.js'
import { killOnAbort, withCleanup } from '../util/cancel.js'
import { commandLineLimit, commandLineSize } from '../util/command-line.js'
import { UserError } from '../util/errors.js'
import { CommandError, errorLine, findOnPath, run } from '../util/exec.js'
import { displayPath } from '../util/paths.js'

/** The rkt command lines a run takes, before any of them runs (what `--dry-run` prints). */
export interface RunCommands {
  /** `rkt fetch` of a layered image's layers, when it has any. */
  fetch: string[] | undefined
  /** `rkt run` with the volumes on the command line. */
  args: string[]
  /** Whether `args` fits on a command line here; if not, the volumes go in a pod manifest. */
  fits: boolean
}

interface PreparedRun extends RunCommands {
  request: RunRequest
  manifest: ImageManifest
  volumes: Array<{ source: string }>
  viaPodManifest: PodRun
}

/** What a run of `request` would run, its layers checked to be there. */
export async function prepareRun(request: RunRequest, signal: AbortSignal): Promise<PreparedRun> {
  const { args, volumes, viaPodManifest, fetchLayers } = await rktRun(request)
  const manifest = await readManifest(request.image, signal)
  const layers = await layerFiles(request.image, manifest)
  const fetch = layers.length > 0 ? fetchLayers(layers) : undefined
  const fits = commandLineSize(['rkt', ...args]) <= commandLineLimit()
  return { request, manifest, volumes, viaPodManifest, fetch, args, fits }
}

/** Runs what `prepareRun` made; resolves with rkt's exit code (the app's, or rkt's own). */
export async function startRun(prepared: PreparedRun, signal: AbortSignal): Promise<number> {
  const { request, manifest, volumes, viaPodManifest, fetch, args, fits } = prepared
  const rkt = findOnPath('rkt')
  if (!rkt) throw new UserError('rkt is not installed (not on PATH); --dry-run prints the command line it would run')
  const missing = await missingPaths(volumes.map((volume) => volume.source))
  if (missing.length > 0)
    throw new UserError(
      `cannot run ${request.image}: ${missing.length} mount sources missing on this host: ${missing.slice(0, 3).join(' ')}${missing.length > 3 ? ' ...' : ''} (nix2aci validate lists them)`,
    )
  if (fetch)
    await run(rkt, fetch, { signal }).catch((error: unknown) => {
      if (!(error instanceof CommandError)) throw error
      throw new UserError(`rkt fetch of the layers failed: ${errorLine(error.stderr) ?? `exit ${error.exitCode}`}`)
    })
  return fits ? runRkt(rkt, args, signal) : runWithPodManifest(rkt, request.image, manifest, viaPodManifest, signal)
}

/**
 * A layered image's layer files, in the order it renders them, each checked to be there: rkt
 * would otherwise try discovery by name for the one it lacks.
 */
async function layerFiles(image: string, manifest: ImageManifest): Promise<string[]> {
  const files = layerFilesOfImage(image, manifest)
  const missing = await missingPaths(files)
  if (missing.length > 0)
    throw new UserError(
      `cannot run ${image}: ${missing.length} of its layers missing: ${missing.slice(0, 3).map(displayPath).join(' ')}${missing.length > 3 ? ' ...' : ''} (building the image again writes them)`,
    )
  return files
}

/** rkt, its output the user's; resolves with its exit code (the app's, or rkt's own). */
function runRkt(rkt: string, args: string[], signal: AbortSignal): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    // An interrupt of nix2aci stops rkt, and its pod, and nix2aci exits once rkt has.
    const child = killOnAbort(spawn(rkt, args, { stdio: 'inherit', signal }), signal)
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'E2BIG')
        reject(new UserError(`rkt's command line is longer than this host allows (${commandLineLimit()} bytes)`))
      else if (error.name !== 'AbortError') reject(error)
    })
    child.on('close', (code) => resolve(code ?? 1))
  })
}

/**
 * A run whose volumes do not fit on a command line: `rkt fetch` puts the image in rkt's store, and
 * `rkt run --pod-manifest` takes the volumes from a file, removed when rkt is done.
 */
async function runWithPodManifest(
  rkt: string,
  image: string,
  manifest: ImageManifest,
  pod: PodRun,
  signal: AbortSignal,
): Promise<number> {
  const fetched = await run(rkt, pod.fetchArgs, { signal }).catch((error: unknown) => {
    if (!(error instanceof CommandError)) throw error
    throw new UserError(`rkt fetch ${image} failed: ${errorLine(error.stderr) ?? `exit ${error.exitCode}`}`)
  })
  const imageId = fetched.stdout.trim().split('\n').at(-1)!
  const dir = await mkdtemp(join(tmpdir(), 'nix2aci-pod-'))
  return withCleanup(
    () => rm(dir, { recursive: true, force: true }),
    async () => {
      const file = join(dir, 'pod-manifest.json')
      await writeFile(file, JSON.stringify(pod.podManifest(imageId, manifest)))
      return runRkt(rkt, pod.runArgs(file), signal)
    },
  )
}
