// One image build, start to finish: Nix facts -> plan -> engine -> validation -> atomic save.
import { mkdirSync, mkdtempSync, renameSync, rmdirSync, rmSync } from 'node:fs'
import { realpath, rm, stat, writeFile } from 'node:fs/promises'
import { machine } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { actoolInstalled, validateWithActool } from '../aci/actool.js'
import { signatureFileOf } from '../aci/files.js'
import { mountsFileOf } from '../aci/mounts.js'
import { trustOptions } from '../aci/rkt.js'
import { requireCompressor, type Compression } from '../aci/compression.js'
import { signImage } from '../aci/sign.js'
import type { Engine, EngineChoice } from '../engines/engine.js'
import { chooseEngine, loadEngine, writingStepTitle } from '../engines/select.js'
import {
  checkProgramInImage,
  closureOf,
  findExecutable,
  installProfile,
  profileState,
  pruneProfile,
  removeProfile,
  requireNix,
  restoreProfile,
  topLevelEntries,
} from '../nix/profile.js'
import { STORE_DIR, defaultExpression } from '../nix/selectors.js'
import { checkBinary, type AppOptions } from '../plan/app-options.js'
import { appcArch } from '../plan/appc.js'
import { mountsFileContent } from '../plan/manifest.js'
import { checkImageName, planImage, type ImageFacts, type ImageKind } from '../plan/plan.js'
import { withCleanup } from '../util/cancel.js'
import { UserError, messageOf } from '../util/errors.js'
import { displayPath } from '../util/paths.js'
import { shellQuote } from '../util/shell.js'

export interface BuildRequest {
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
}

/** How a build shows what it is doing; the CLI picks a spinner, plain lines or silence. */
export interface Progress {
  step<T>(title: string, work: () => Promise<T>): Promise<T>
  /** What the running step is at now, shown beside its title: `building hello-2.12.drv`. */
  update(detail: string): void
  /** Under --verbose, where the tools' own output goes as it comes, line by line. */
  output?: (line: string) => void
}

/** `example.com/etcd` is a valid image name but not a file name. */
export function imageFileBase(name: string): string {
  return name.replaceAll('/', '-')
}

/**
 * Everything up to the start of nix-env is synchronous, so that nothing delays it; the engine's
 * modules load while it runs. Once `signal` aborts, the build stops, undoes its work and rejects.
 */
export async function buildImage(request: BuildRequest, progress: Progress, signal: AbortSignal): Promise<BuildResult> {
  checkImageName(request.name)
  checkBinary(request.binary)
  const engine = chooseEngine(request.engine, request.compression, request.kind)
  requireCompressor(request.compression)
  requireNix()
  signal.throwIfAborted()
  const outDir = resolve(request.outDir)
  const staging = makeStagingDir(outDir, request.name)
  const base = join(outDir, imageFileBase(request.name))
  const final = {
    image: `${base}.aci`,
    mounts: mountsFileOf(`${base}.aci`),
    signature: signatureFileOf(`${base}.aci`),
    profile: `${base}.profile`,
  }
  // A thin image's profile lives beside it from the start (it is its GC root); a fat image needs none.
  const profile = request.kind === 'thin' ? final.profile : join(staging, 'profile')
  // What a failed thin build puts back; read before nix-env starts changing it.
  const profileBefore = request.kind === 'thin' ? profileState(final.profile) : undefined
  let saved = false

  const cleanup = async () => {
    await rm(staging, { recursive: true, force: true })
    if (saved) return
    if (profileBefore) await restoreProfile(final.profile, profileBefore)
    removeMadeOutDir(outDir)
  }
  return withCleanup(cleanup, async () => {
    const expression = defaultExpression(request.file, process.env.NIX_PATH)
    const installing = progress.step(`Installing ${request.packages.join(', ')} into the image profile`, () =>
      installProfile(profile, request.instantiated ?? request.packages, expression, signal, {
        building: (derivation) => progress.update(`building ${derivation}`),
        output: progress.output,
      }),
    )
    // nix-env is running now: load the engine's modules meanwhile instead of after it.
    const writerLoading = loadEngine(engine)
    writerLoading.catch(() => undefined) // awaited below; a build that fails first must not leave it unhandled
    await installing
    const { userEnvironment, execPath, app, topLevel, closure } = await progress.step(
      'Querying the closure',
      async () => {
        // nix-store follows the profile's links itself: the query need not wait for us to resolve them.
        const querying = closureOf(profile, signal)
        querying.catch(() => undefined) // awaited below, unless resolving the profile fails first
        const userEnvironment = await realpath(profile)
        const [execPath, topLevel, closure] = await Promise.all([
          findExecutable(userEnvironment, request.binary),
          topLevelEntries(userEnvironment),
          querying,
        ])
        const app = await resolvePrograms({ storeDir: STORE_DIR, userEnvironment, topLevel, closure }, request.app)
        return { userEnvironment, execPath, app, topLevel, closure }
      },
    )
    const plan = planImage(
      { storeDir: STORE_DIR, userEnvironment, topLevel, execPath, closure },
      {
        kind: request.kind,
        name: request.name,
        os: 'linux',
        arch: appcArch(machine()),
        resolvConf: request.resolvConf,
        app,
      },
    )
    const staged = {
      image: join(staging, 'image.aci'),
      mounts: join(staging, 'image.mounts'),
      signature: join(staging, 'image.aci.asc'),
    }
    const writeImage = await writerLoading
    const { imageId } = await progress.step(writingStepTitle(engine, request.kind), () =>
      writeImage(plan, staged.image, { compression: request.compression, staging, signal }).catch((error: unknown) => {
        throw outputError(outDir, error)
      }),
    )
    const hasVolumes = plan.volumes.length > 0
    // Both settle before anything can fail on: a write still running would keep staging from going.
    const [validation, mountsWrite] = await Promise.allSettled([
      request.validate &&
        actoolInstalled() &&
        progress.step('Validating with actool', () => validateWithActool(staged.image, signal)),
      hasVolumes && writeFile(staged.mounts, mountsFileContent(plan)),
    ])
    if (validation.status === 'rejected') throw validation.reason
    if (mountsWrite.status === 'rejected') throw outputError(outDir, mountsWrite.reason)
    const validated = validation.value
    const { sign } = request
    if (sign) await progress.step('Signing with gpg', () => signImage(staged.image, staged.signature, sign.key, signal))

    saveOutputs(staged, final, { signed: Boolean(sign), hasVolumes })
    saved = true
    await (request.kind === 'thin' ? pruneProfile(final.profile) : removeProfile(final.profile))

    const mountsFile = hasVolumes ? final.mounts : null
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
      rktCommand: rktRunCommand(final.image, mountsFile, Boolean(sign)),
    }
  })
}

type Outputs = { image: string; mounts: string; signature: string }

/**
 * Moves the staged files into place, each by an atomic rename; the image goes last. A signature or
 * .mounts file that the new image does not have is removed, so no stale one stays beside it.
 * Synchronous on purpose: signal handlers run on the event loop, so an interrupt's cleanup sees the
 * old set of files or the new one, never a mix, and never restores the old profile under a new image.
 * Only a crash, or a rename that fails half-way (a directory in the way of an output's name), can.
 */
function saveOutputs(staged: Outputs, final: Outputs, has: { signed: boolean; hasVolumes: boolean }): void {
  if (has.signed) renameSync(staged.signature, final.signature)
  else rmSync(final.signature, { force: true })
  if (has.hasVolumes) renameSync(staged.mounts, final.mounts)
  else rmSync(final.mounts, { force: true })
  renameSync(staged.image, final.image)
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

/** A full disk or a read-only file system is the user's to fix, not a bug: say so in one line. */
function outputError(outDir: string, error: unknown): unknown {
  const { code, path } = error as NodeJS.ErrnoException
  // A store file that cannot be read is not the output directory's fault.
  const aboutOutput = path === undefined || path.startsWith(outDir)
  return aboutOutput && code && ['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EIO'].includes(code)
    ? new UserError(`cannot write the image to ${outDir}: ${messageOf(error)}`)
    : error
}

/**
 * Out-dirs this process made, each with the first directory made for it. Builds of one spec share
 * an out-dir that only one of them made; whichever fails last finds it empty and takes it away.
 */
const madeOutDirs = new Map<string, string>()

/** A staging directory beside the outputs, so the final renames are atomic. */
function makeStagingDir(outDir: string, name: string): string {
  try {
    const made = mkdirSync(outDir, { recursive: true })
    if (made) madeOutDirs.set(outDir, made)
    return mkdtempSync(join(outDir, `.${imageFileBase(name)}.building-`))
  } catch (error) {
    removeMadeOutDir(outDir)
    throw new UserError(`cannot write to the output directory ${outDir}: ${messageOf(error)}`)
  }
}

/** Takes away an out-dir this process made, and the parents made for it, if nothing is in it. */
function removeMadeOutDir(outDir: string): void {
  const top = madeOutDirs.get(outDir)
  if (top) removeEmptyDirs(outDir, top)
}

/** Removes `dir` and its parents up to `top`, stopping at the first that is not empty. */
function removeEmptyDirs(dir: string, top: string): void {
  for (let current = dir; current.startsWith(top); current = dirname(current)) {
    try {
      rmdirSync(current)
    } catch {
      return // not empty: something else lives there now
    }
  }
}

/** The `rkt run` line to copy, with the volumes read from the .mounts file by the shell. */
function rktRunCommand(image: string, mountsFile: string | null, signed: boolean): string {
  const volumes = mountsFile ? ` $(cat ${shellQuote([displayPath(mountsFile)])})` : ''
  return `${shellQuote(['sudo', 'rkt', 'run', ...trustOptions(signed)])}${volumes} ${shellQuote([displayPath(image)])}`
}
