// `nix2aci run`: rkt run with the image's own volumes and the user's rkt options.
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { missingPaths } from '../../aci/files.js'
import { readManifest } from '../../aci/inspect.js'
import { layerFileOf, missingLayers } from '../../aci/layers.js'
import { displayPath } from '../../util/paths.js'
import { parseRunWords, rktRun, type PodRun } from '../../aci/rkt.js'
import { killOnAbort, withCleanup } from '../../util/cancel.js'
import { commandLineLimit, commandLineSize } from '../../util/command-line.js'
import { UserError } from '../../util/errors.js'
import { CommandError, errorLine, findOnPath, run } from '../../util/exec.js'
import { shellQuote } from '../../util/shell.js'
import type { GlobalArgs } from '../main.js'

export function addRunCommand(cli: GlobalArgs, signal: AbortSignal): GlobalArgs {
  return cli.command(
    'run <aci..>',
    "Run an image with rkt, with the volumes of its .mounts file; rkt's options (--name=value) go to rkt unchanged, args after -- to the app",
    (y) =>
      y
        .positional('aci', {
          type: 'string',
          array: true,
          demandOption: true,
          describe: "the .aci file, with rkt's options before it (global and run options) or after it (per-app)",
        })
        .option('dry-run', { type: 'boolean', default: false, describe: 'print the rkt command line instead' })
        // Options nix2aci does not know stay in `aci`, in order, for rkt.
        .parserConfiguration({ 'populate--': true, 'unknown-options-as-args': true }),
    async (argv) => {
      const request = parseRunWords(argv.aci, ((argv['--'] as unknown[] | undefined) ?? []).map(String))
      const { args, volumes, viaPodManifest, fetchLayers } = await rktRun(request)
      const layers = await layerFiles(request.image, signal)
      const fetch = layers.length > 0 ? fetchLayers(layers) : undefined
      const fits = commandLineSize(['rkt', ...args]) <= commandLineLimit()
      if (argv.dryRun) {
        if (!fits) process.stderr.write('too long for a command line here: run passes the volumes in a pod manifest\n')
        if (fetch) process.stdout.write(`${shellQuote(['rkt', ...fetch])}\n`)
        return void process.stdout.write(`${shellQuote(['rkt', ...args])}\n`)
      }
      const rkt = findOnPath('rkt')
      if (!rkt)
        throw new UserError('rkt is not installed (not on PATH); --dry-run prints the command line it would run')
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
      process.exitCode = fits
        ? await runRkt(rkt, args, signal)
        : await runWithPodManifest(rkt, request.image, viaPodManifest, signal)
    },
  )
}

/**
 * A layered image's layer files, in the order it renders them, each checked to be there: rkt
 * would otherwise try discovery by name for the one it lacks.
 */
async function layerFiles(image: string, signal: AbortSignal): Promise<string[]> {
  const manifest = await readManifest(image, signal)
  const missing = await missingLayers(image, manifest)
  if (missing.length > 0)
    throw new UserError(
      `cannot run ${image}: ${missing.length} of its layers missing: ${missing.slice(0, 3).map(displayPath).join(' ')}${missing.length > 3 ? ' ...' : ''} (building the image again writes them)`,
    )
  return (manifest.dependencies ?? []).map((dependency) => layerFileOf(image, dependency))
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
async function runWithPodManifest(rkt: string, image: string, pod: PodRun, signal: AbortSignal): Promise<number> {
  const [manifest, fetched] = await Promise.all([
    readManifest(image, signal),
    run(rkt, pod.fetchArgs, { signal }).catch((error: unknown) => {
      if (!(error instanceof CommandError)) throw error
      throw new UserError(`rkt fetch ${image} failed: ${errorLine(error.stderr) ?? `exit ${error.exitCode}`}`)
    }),
  ])
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
