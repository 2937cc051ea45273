// One image build, start to finish: open the outputs -> Nix facts -> plan -> engine -> validation ->
// commit the outputs (./outputs.ts owns the files, their lock and their one-unit save).
import { realpath, stat, writeFile } from 'node:fs/promises'
import { machine } from 'node:os'
import { basename, join } from 'node:path'
import { actoolInstalled, validateWithActool } from '../aci/actool.js'
import { formatMountsFile, mountsTooLongWarning } from '../aci/mounts.js'
import { rktRunCommand } from '../aci/rkt.js'
import { requireCompressor, type Compression } from '../aci/compression.js'
import { checkSigningKey, signImage } from '../aci/sign.js'
import type { Engine, EngineChoice } from '../engines/engine.js'
import { chooseEngine, loadEngine, writingStepTitle } from '../engines/select.js'
import {
  checkProgramInImage,
  closureOf,
  findExecutable,
  referenceGraphOf,
  requireNix,
  topLevelEntries,
} from '../nix/profile.js'
import { imageOwnPaths, layerFilesOf, planLayers } from '../plan/layers.js'
import { stageLayers, type LayersResult } from './layers.js'
import { checkInputs, describeInputs, installInputs, type PackageInputs } from '../nix/inputs.js'
import { STORE_DIR, defaultExpression } from '../nix/selectors.js'
import { checkBinary, type AppOptions } from '../plan/app-options.js'
import { appcArch } from '../plan/appc.js'
import { checkImageName, planImage, type ImageFacts, type ImageKind } from '../plan/plan.js'
import { withCleanup } from '../util/cancel.js'
import { displayPath } from '../util/paths.js'
import { ImageOutputs } from './outputs.js'

export interface BuildRequest extends PackageInputs {
  kind: ImageKind
  name: string
  binary: string
  packages: string[]
  /** Store derivations already instantiated for `packages` by a shared evaluation, installed instead. */
  instantiated?: string[]
  outDir: string
  /** `-f`: the Nix expression to take packages from. */
  file?: string
  engine: EngineChoice
  compression: Compression
  resolvConf: boolean
  validate: boolean
  app: AppOptions
  /** Sign with gpg (`<name>.aci.asc`), with this key or gpg's default. */
  sign?: { key?: string }
  /** A layered image's: how many layers at most, and what their names start with. */
  layers?: { maxLayers: number; prefix: string }
}

export interface BuildResult {
  image: string
  kind: ImageKind
  engine: Engine
  size: number
  imageId: string
  mounts: number
  mountsFile: string | null
  /** The Nix profile beside a thin image: the GC root that keeps its closure. */
  profile: string | null
  validated: boolean
  signature: string | null
  rktCommand: string
  /** A layered image's layers folder, and which of its layers this build wrote or found there. */
  layers: { folder: string; written: string[]; kept: string[] } | null
  /** What works but needs the user's attention: a `.mounts` file too long for a command line. */
  warnings: string[]
}

/** How a build shows what it is doing; the CLI picks a spinner, plain lines or silence. */
export interface Progress {
  step<T>(title: string, work: () => Promise<T>): Promise<T>
  /** What the running step is at now, shown beside its title: `building hello-2.12.drv`. */
  update(detail: string): void
  /** Under --verbose, where the tools' own output goes as it comes, line by line. */
  output?: (line: string) => void
}

/**
 * Nothing before the start of nix-env waits on I/O (unless another build of the name holds its
 * lock, or a signing build asks gpg for its key), so that nothing delays it; the engine's modules load while it runs. Once `signal` aborts,
 * the build stops, undoes its work and rejects.
 */
export async function buildImage(request: BuildRequest, progress: Progress, signal: AbortSignal): Promise<BuildResult> {
  checkImageName(request.name)
  checkBinary(request.binary)
  checkInputs(request)
  const engine = chooseEngine(request.engine, request.compression, request.kind)
  requireCompressor(request.compression)
  requireNix()
  if (request.sign) await checkSigningKey(request.sign.key, signal)
  signal.throwIfAborted()
  const outputs = new ImageOutputs(request.outDir, request.name, request.kind)
  const { final } = outputs
  return withCleanup(
    () => outputs.close(),
    async () => {
      const staged = await outputs.open(
        (waiting) =>
          progress.step(
            `Waiting for the other build of ${request.name} in ${displayPath(outputs.outDir)}`,
            () => waiting,
          ),
        signal,
      )
      const expression = defaultExpression(request.file, process.env.NIX_PATH)
      const inputs = { ...request, packages: request.instantiated ?? request.packages }
      const installing = progress.step(`Installing ${describeInputs(request)} into the image profile`, () =>
        installInputs(staged.profile, inputs, expression, join(staged.dir, 'root'), signal, {
          building: (derivation) => progress.update(`building ${derivation}`),
          output: progress.output,
        }),
      )
      // nix-env is running now: load the engine's modules meanwhile instead of after it.
      const writerLoading = loadEngine(engine)
      writerLoading.catch(() => undefined) // awaited below; a build that fails first must not leave it unhandled
      await installing
      const { userEnvironment, execPath, app, topLevel, closure, references } = await progress.step(
        'Querying the closure',
        async () => {
          // nix-store follows the profile's links itself: the query need not wait for us to resolve them.
          const graphing = request.kind === 'layered' ? referenceGraphOf(staged.profile, STORE_DIR, signal) : undefined
          const querying = graphing ? graphing.then((graph) => [...graph.keys()]) : closureOf(staged.profile, signal)
          querying.catch(() => undefined) // awaited below, unless resolving the profile fails first
          const userEnvironment = await realpath(staged.profile)
          const [execPath, topLevel, closure] = await Promise.all([
            findExecutable(userEnvironment, request.binary),
            topLevelEntries(userEnvironment),
            querying,
          ])
          const app = await resolvePrograms({ storeDir: STORE_DIR, userEnvironment, topLevel, closure }, request.app)
          return { userEnvironment, execPath, app, topLevel, closure, references: await graphing }
        },
      )
      const platform = { os: 'linux', arch: appcArch(machine()) }
      let layers: LayersResult | undefined
      let ownPaths: string[] = []
      if (references && request.layers) {
        // The user environment and nix-env's manifest are the image's own (they change with every
        // package list): they go in the app image, and only the packages' paths in layers.
        ownPaths = imageOwnPaths(userEnvironment, references)
        // The packages installed: what the user environment and nix-env's manifest refer to.
        const packages = ownPaths.flatMap((path) => references.get(path) ?? [])
        for (const path of ownPaths) references.delete(path)
        const layerPlans = planLayers(references, { storeDir: STORE_DIR, ...request.layers, ...platform }, packages)
        const { writeLayer } = await import('../engines/native.js')
        layers = await progress.step(`Writing the layers into ${displayPath(final.layers)} (native engine)`, () =>
          stageLayers(layerPlans, { final: final.layers, staged: staged.layers }, writeLayer, {
            signal,
            ...(request.sign ? { sign: request.sign } : {}),
            onLayer: (file) => progress.update(file),
          }).catch((error: unknown) => {
            throw outputs.writeError(error)
          }),
        )
      }
      const plan = planImage(
        { storeDir: STORE_DIR, userEnvironment, topLevel, execPath, closure },
        {
          kind: request.kind,
          name: request.name,
          ...platform,
          resolvConf: request.resolvConf,
          app,
          ...(layers ? { layered: { dependencies: layers.dependencies, ownPaths } } : {}),
        },
      )
      const writeImage = await writerLoading
      const { imageId } = await progress.step(writingStepTitle(engine, request.kind), () =>
        writeImage(plan, staged.image, { compression: request.compression, staging: staged.dir, signal }).catch(
          (error: unknown) => {
            throw outputs.writeError(error)
          },
        ),
      )
      const hasVolumes = plan.volumes.length > 0
      // Both settle before anything can fail on: a write still running would keep staging from going.
      const [validation, mountsWrite] = await Promise.allSettled([
        request.validate &&
          actoolInstalled() &&
          progress.step('Validating with actool', () =>
            validateWithActool(
              [staged.image, ...(layers?.written ?? []).map((file) => join(staged.layers, file))],
              signal,
              (file) => (file === staged.image ? final.image : join(final.layers, basename(file))),
            ),
          ),
        hasVolumes && writeFile(staged.mounts, formatMountsFile(plan.volumes)),
      ])
      if (validation.status === 'rejected') throw validation.reason
      if (mountsWrite.status === 'rejected') throw outputs.writeError(mountsWrite.reason)
      const validated = validation.value
      const { sign } = request
      if (sign)
        await progress.step('Signing with gpg', () => signImage(staged.image, staged.signature, sign.key, signal))

      await outputs.commit({ signed: Boolean(sign), volumes: hasVolumes, layers: layers?.staged ?? [] }, (waiting) =>
        progress.step(`Waiting for another nix2aci to finish with ${displayPath(final.layers)}`, () => waiting),
      )

      const mountsFile = hasVolumes ? final.mounts : null
      const tooLong = mountsFile ? mountsTooLongWarning(plan.volumes, displayPath(mountsFile)) : undefined
      return {
        image: final.image,
        kind: request.kind,
        engine,
        size: (await stat(final.image)).size,
        imageId,
        mounts: plan.app.mountPoints.length,
        mountsFile,
        profile: request.kind === 'thin' ? final.profile : null,
        validated: validated === true,
        signature: sign ? final.signature : null,
        layers: layers ? { folder: final.layers, written: layers.written, kept: layers.kept } : null,
        rktCommand: rktRunCommand(
          final.image,
          mountsFile,
          Boolean(sign),
          layers ? layerFilesOf(final.layers, plan.dependencies) : [],
        ),
        warnings: tooLong ? [tooLong] : [],
      }
    },
  )
}

/**
 * The options with every command's program (`sh`, `bin/sh`) made an absolute path in the profile;
 * one given as an absolute path stays as it is, once checked to be in the image.
 */
async function resolvePrograms(facts: ImageFacts, app: AppOptions): Promise<AppOptions> {
  const resolveArgv = async ([program, ...args]: string[]) => {
    if (!program!.startsWith('/')) return [await findExecutable(facts.userEnvironment, program!), ...args]
    await checkProgramInImage(facts, program!)
    return [program!, ...args]
  }
  return {
    ...app,
    ...(app.exec ? { exec: await resolveArgv(app.exec) } : {}),
    eventHandlers: await Promise.all(
      app.eventHandlers.map(async (handler) => ({ ...handler, exec: await resolveArgv(handler.exec) })),
    ),
  }
}
