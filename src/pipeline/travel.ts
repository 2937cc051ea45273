// Thin images to other hosts: export (image + .mounts + closure in one file), import (its inverse, saved
// as one unit by ./outputs.ts) and copy (nix-copy-closure and ssh, with the same NIX_SSHOPTS).
import { randomBytes } from 'node:crypto'
import { realpath, stat, writeFile } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { exists, missingPaths, profileFileOf, signatureFileOf } from '../aci/files.js'
import { readImage } from '../aci/inspect.js'
import { mountsFileOf, parseMountsFile, readMountsFile } from '../aci/mounts.js'
import { imageIdOf } from '../aci/read.js'
import { closureOf, requireNix } from '../nix/profile.js'
import { isStorePath } from '../nix/selectors.js'
import {
  copyClosureCommand,
  exportClosure,
  importClosure,
  invalidPaths,
  nixSshOptions,
  setProfile,
} from '../nix/transport.js'
import { checkImageName, type HostVolume } from '../plan/plan.js'
import {
  EXPORT_FORMAT,
  EXPORT_VERSION,
  readExportFile,
  truncatedClosure,
  writeExportFile,
  type ExportHeader,
} from '../transport/export-file.js'
import { withCleanup } from '../util/cancel.js'
import { UserError } from '../util/errors.js'
import { CommandError, errorLine, findOnPath, run } from '../util/exec.js'
import type { Lock } from '../util/lock.js'
import { displayPath } from '../util/paths.js'
import { shellQuote } from '../util/shell.js'
import { ImageOutputs } from './outputs.js'

/** What an image needs on another host: its closure, rooted by its profile's user environment. */
interface Shipment {
  name: string
  imageId: string
  mountsFile: string
  volumes: HostVolume[]
  userEnvironment: string
  /**
   * The closure, once Nix has answered and every store path the .mounts names is found in it: an
   * export writes the image meanwhile, so that the importing side is ready when the closure comes.
   */
  closure: Promise<string[]>
}

/**
 * A thin image, its .mounts and its profile, refused in one line when its closure is not all here.
 * `nix-store -qR` of the user environment is the one Nix query: it fails when the path is not valid,
 * and a valid path's closure is valid (Nix registers none without its references).
 */
async function shipmentOf(image: string, signal: AbortSignal): Promise<Shipment> {
  requireNix()
  const profile = profileFileOf(image)
  const gone = () =>
    new UserError(
      `the closure of ${image} is no longer in the store (${displayPath(profile)} leads nowhere): rebuild the image`,
    )
  const resolving = realpath(profile).catch(() => {
    throw gone()
  })
  // Nix answers while the image and its .mounts are read: all are on the way to the closure's first byte.
  const querying = resolving.then((userEnvironment) =>
    closureOf(userEnvironment, signal).catch((error: unknown) => {
      // Nix knows no such path (deleted, or never in this store): the profile leads nowhere.
      throw error instanceof UserError && / is not (valid|in the Nix store)/.test(error.message) ? gone() : error
    }),
  )
  querying.catch(() => undefined) // awaited by the caller, after the image's own refusals
  const mountsReading = readMountsFile(image)
  mountsReading.catch(() => undefined) // awaited below, once the image is known to be thin
  const contents = await readImage(image, signal)
  if (contents.kind !== 'thin')
    throw new UserError(
      `${image} is not a thin image (it is ${contents.kind === 'fat' ? 'a fat one, self-contained: copy its .aci' : 'neither thin nor fat'}): only a thin image's closure is shipped`,
    )
  const mountsFile = mountsFileOf(image)
  const volumes = await mountsReading
  if (!volumes) throw new UserError(`${image} has no ${basename(mountsFile)} beside it`)
  const closure = querying.then((paths) => {
    const inClosure = new Set(paths)
    const outside = volumes.find((volume) => isStorePath(volume.source) && !inClosure.has(volume.source))
    if (outside)
      throw new UserError(
        `${mountsFile} mounts ${outside.source}, which is not in the closure of ${displayPath(profile)}`,
      )
    return paths
  })
  closure.catch(() => undefined) // awaited by the caller
  return {
    name: contents.manifest.name,
    imageId: contents.imageId,
    mountsFile,
    volumes,
    userEnvironment: await resolving,
    closure,
  }
}

export interface ExportResult {
  file: string
  name: string
  paths: number
  /** The file's size; absent for standard output. */
  size?: number
}

/** `nix2aci export IMAGE -o FILE`: FILE is complete, or as it was; `-o -` streams to standard output. */
export async function exportImage(image: string, file: string, signal: AbortSignal): Promise<ExportResult> {
  const shipment = await shipmentOf(image, signal)
  const header: ExportHeader = {
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    name: shipment.name,
    kind: 'thin',
    imageId: shipment.imageId,
    userEnvironment: shipment.userEnvironment,
  }
  const toStdout = file === '-'
  // The header and image go out before Nix has named the closure: the importing side opens its
  // outputs and starts nix-store meanwhile. An export refused then leaves a stream its import refuses.
  await writeExportFile(toStdout ? file : resolve(file), header, image, shipment.mountsFile, async (fd) =>
    exportClosure(await shipment.closure, fd, signal),
  )
  const size = toStdout ? undefined : (await stat(file)).size
  return { file, name: shipment.name, paths: (await shipment.closure).length, size }
}

export interface ImportResult {
  image: string
  mountsFile: string
  profile: string
  name: string
  paths: number
}

/**
 * `nix2aci import FILE` (`-`: standard input): the closure into the store, then the image, its .mounts and its profile
 * saved as one unit beside each other, once every path is in the store and every mount source here.
 */
export async function importImage(
  file: string,
  outDir: string,
  onWait: (waiting: Promise<Lock>) => Promise<Lock>,
  signal: AbortSignal,
): Promise<ImportResult> {
  requireNix()
  let outputs: ImageOutputs | undefined
  let header: ExportHeader | undefined
  let imported: string[] = []
  let stagedImageId: Promise<string> | undefined
  let volumes: HostVolume[] = []
  const staged = { image: '', mounts: '', profile: '' }
  return withCleanup(
    async () => outputs?.close(),
    async () => {
      await readExportFile(file, {
        header: async (found) => {
          checkImageName(found.name)
          header = found
          outputs = new ImageOutputs(outDir, found.name, 'thin')
          Object.assign(staged, await outputs.open(onWait, signal))
          const existing = outputs.final.image
          if ((await exists(existing)) && (await imageIdOf(existing, signal)) !== found.imageId)
            throw new UserError(
              `cannot import ${found.name}: ${displayPath(existing)} is a different image of that name (remove it, or import with --out-dir elsewhere)`,
            )
        },
        image: async (data) => {
          await writeFile(staged.image, data)
          // Hashed while the closure comes in.
          stagedImageId = imageIdOf(staged.image, signal)
          stagedImageId.catch(() => undefined) // awaited below
        },
        mounts: async (data) => {
          volumes = parseMountsFile(data.toString('utf8'), `${file}: image.mounts`)
          await writeFile(staged.mounts, data)
        },
        closure: async (fd) => void (imported = await importClosure(fd, () => truncatedClosure(file), signal)),
      })
      const { name, imageId, userEnvironment } = header!
      // nix-store --import names every path of the stream. The user environment valid, its whole
      // closure is (Nix registers no path without its references); it is asked about only when unnamed.
      if (!imported.includes(userEnvironment) && (await invalidPaths([userEnvironment], signal)).length > 0)
        throw new UserError(`${file} did not bring its closure: its user environment ${userEnvironment} is not here`)
      // The profile is set while the image and the mount sources are checked; all settle before any
      // refusal, so that close puts the profile back after nix-env, not under it.
      const [profileSet, imageChecked, sourcesChecked] = await Promise.allSettled([
        setProfile(staged.profile, userEnvironment, signal),
        stagedImageId!,
        missingPaths(volumes.map((volume) => volume.source)),
      ])
      if (imageChecked.status === 'rejected') throw imageChecked.reason
      if (imageChecked.value !== imageId)
        throw new UserError(`${file} is damaged: its image.aci is not the image ${imageId.slice(0, 19)}... it names`)
      if (sourcesChecked.status === 'rejected') throw sourcesChecked.reason
      const missing = sourcesChecked.value
      if (missing.length > 0)
        throw new UserError(
          `cannot import ${name}: ${missing.length} mount sources missing on this host, first ${missing[0]}`,
        )
      if (profileSet.status === 'rejected') throw profileSet.reason
      await outputs!.commit({ signed: false, volumes: true })
      const { final } = outputs!
      return { image: final.image, mountsFile: final.mounts, profile: final.profile, name, paths: imported.length }
    },
  )
}

/** `ssh://[user@]host[/dir]`: the host as nix-copy-closure and ssh take it, and the remote directory. */
export function parseSshTarget(target: string, image: string): { host: string; dir: string } {
  const match = /^ssh:\/\/([^/:?#\s]+)(\/[^\s]*)?$/.exec(target)
  if (!match)
    throw new UserError(
      `cannot copy to ${target}: the target must be ssh://[user@]host[/dir] (a port goes in ~/.ssh/config or NIX_SSHOPTS)`,
    )
  return { host: match[1]!, dir: match[2] ?? dirname(resolve(image)) }
}

/** One step of a copy: a program's words, the local file it reads on standard input, and what it does (for errors). */
export interface CopyCommand {
  words: string[]
  stdinFile?: string
  step: string
}

/** A copy step as a shell reads it back (`< FILE` for its standard input): what --dry-run prints. */
export function copyCommandLine({ words, stdinFile }: CopyCommand): string {
  return stdinFile === undefined ? shellQuote(words) : `${shellQuote(words)} < ${shellQuote([stdinFile])}`
}

/**
 * `nix2aci copy IMAGE --to ssh://HOST[/DIR]`: the commands, in order. The closure goes first and the
 * profile roots it at once; the image goes last, so an image on the remote host has what it mounts.
 * Every step is ssh with NIX_SSHOPTS, as nix-copy-closure's own connection is: one host, one port,
 * one key. Files go through ssh's standard input into hidden names of this copy's own, renamed into
 * place at the end, so each is whole or absent on the remote host.
 */
export async function copyCommands(image: string, target: string, signal: AbortSignal): Promise<CopyCommand[]> {
  const { host, dir } = parseSshTarget(target, image)
  const shipment = await shipmentOf(image, signal)
  await shipment.closure // refused here, before anything goes to the remote host
  const ssh = (remoteCommand: string) => ['ssh', ...nixSshOptions(), host, remoteCommand]
  const remote = (words: string[]): CopyCommand => ({
    words: ssh(shellQuote(words)),
    step: `${host}: ${shellQuote(words)}`,
  })
  const staging = randomBytes(4).toString('hex')
  const temporaryOf = (file: string) => join(dir, `.${basename(file)}.${staging}.tmp`)
  const upload = (file: string): CopyCommand => ({
    words: ssh(`cat > ${shellQuote([temporaryOf(file)])}`),
    stdinFile: file,
    step: `copying ${basename(file)} to ${host}:${dir}`,
  })
  const profile = profileFileOf(join(dir, basename(image)))
  const signature = signatureFileOf(image)
  const files = [shipment.mountsFile, ...((await exists(signature)) ? [signature] : []), image]
  // The profile roots the closure as soon as it is there (a new generation: the one before still roots
  // the image there now). The files are renamed into place in the last step, the image last: a copy
  // that fails before it leaves the image, its .mounts and its signature there as they were.
  const settle = files.map((file) => shellQuote(['mv', temporaryOf(file), join(dir, basename(file))])).join(' && ')
  const closure = copyClosureCommand(host, [shipment.userEnvironment])
  return [
    { words: closure, step: shellQuote(closure) },
    remote(['mkdir', '-p', dir]),
    remote(['nix-env', '-p', profile, '--set', shipment.userEnvironment]),
    ...files.map(upload),
    { words: ssh(settle), step: `${host}: putting ${basename(image)} in place in ${dir}` },
  ]
}

/** Runs `copyCommands`' commands in order; the first that fails stops the copy, its step named in one line. */
export async function runCopyCommands(commands: readonly CopyCommand[], signal: AbortSignal): Promise<void> {
  for (const command of commands) {
    const [program, ...args] = command.words as [string, ...string[]]
    if (!findOnPath(program)) throw new UserError(`copy needs ${program}, which is not on PATH`)
    await run(program, args, { signal, stdinFile: command.stdinFile }).catch((error: unknown) => {
      if (!(error instanceof CommandError)) throw error
      throw new UserError(`copy: ${command.step} failed: ${errorLine(error.stderr) ?? `exit ${error.exitCode}`}`)
    })
  }
}
