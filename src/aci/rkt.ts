// The `rkt run` command line for an image: its .mounts volumes, trust by signature when it has one,
// and the user's own rkt options, unchanged.
import { exists, signatureFileOf } from './files.js'
import type { App, ImageManifest } from './manifest.js'
import { parseMountsFile, readMountsFile, volumeArgument } from './mounts.js'
import { toAcName } from '../plan/appc.js'
import type { HostVolume } from '../plan/plan.js'
import { UserError } from '../util/errors.js'
import { displayPath } from '../util/paths.js'
import { shellQuote } from '../util/shell.js'

/** The appc version of the pod manifests written here: rkt 1.30's own. */
const POD_MANIFEST_VERSION = '0.8.11'

/** rkt 1.30's global options (`rkt help`): they go before `run`, every other one after it. */
const RKT_GLOBAL_OPTIONS = [
  '--debug',
  '--dir',
  '--insecure-options',
  '--local-config',
  '--system-config',
  '--trust-keys-from-https',
  '--user-config',
]

/** A signed image is verified by rkt against its trusted keys; an unsigned one needs the insecure option. */
function trustOptions(signed: boolean): string[] {
  return signed ? [] : ['--insecure-options=image']
}

/** What `nix2aci run` was given: rkt's options around the image, and the app's arguments. */
export interface RunRequest {
  image: string
  /** rkt options before the image, global and `run` ones mixed, in order. */
  optionsBefore: string[]
  /** rkt options after the image (the per-app ones: `--exec=`, `--user=`, ...). */
  optionsAfter: string[]
  appArgs: string[]
}

/**
 * Splits the words after `nix2aci run` (nix2aci's own options taken out) into rkt's options and the
 * image. An option's value goes after `=`, as rkt's help writes them: a second bare word is refused
 * rather than guessed to be either a value or the image.
 */
export function parseRunWords(words: readonly string[], appArgs: readonly string[]): RunRequest {
  const at = words.findIndex((word) => !word.startsWith('-'))
  if (at < 0) throw new UserError('run: name the image to run (nix2aci run [RKT_OPTION=VALUE ...] IMAGE.aci)')
  const stray = words.slice(at + 1).find((word) => !word.startsWith('-'))
  if (stray !== undefined)
    throw new UserError(
      `run takes one image, and rkt's options their value after '=' (--dir=/var/lib/rkt): ${words[at]} and ${stray} cannot both be the image`,
    )
  return {
    image: words[at]!,
    optionsBefore: words.slice(0, at),
    optionsAfter: words.slice(at + 1),
    appArgs: [...appArgs],
  }
}

const optionName = (option: string) => option.split('=')[0]!
const volumeName = (option: string) => /^--volume=([^,]*)/.exec(option)?.[1]

export interface RktRun {
  /** The whole command line, volumes included. */
  args: string[]
  /** `rkt fetch` of a layered image's layers, into the store `rkt run` then resolves them from. */
  fetchLayers(files: string[]): string[]
  /** The volumes from the `.mounts` file that the command passes (the user's own `--volume`s replace theirs). */
  volumes: HostVolume[]
  /** The same run for when `args` do not fit on a command line: the volumes in a pod manifest. */
  viaPodManifest: PodRun
}

export interface PodRun {
  /** `rkt fetch`, whose output is the image ID the pod manifest names. */
  fetchArgs: string[]
  runArgs(podManifestFile: string): string[]
  podManifest(imageId: string, manifest: ImageManifest): PodManifest
}

/** The part of appc's pod manifest (schema/pod.go) one image needs: rkt reads it with `--pod-manifest`. */
export interface PodManifest {
  acKind: 'PodManifest'
  acVersion: string
  apps: Array<{ name: string; image: { id: string; name: string }; app?: App }>
  volumes: Array<{ name: string; kind: 'host'; source: string; readOnly?: boolean }>
}

/**
 * `[global options] run [trust] [run options] [volumes] IMAGE [per-app options] [-- app args]`. A user's
 * `--insecure-options` replaces the trust option nix2aci would add; a user's `--volume=NAME,...`
 * replaces the `.mounts` file's volume of that name.
 */
export async function rktRun(request: RunRequest): Promise<RktRun> {
  const { image, optionsBefore, optionsAfter, appArgs } = request
  const fromFile = (await readMountsFile(image)) ?? []
  const signed = await exists(signatureFileOf(image))
  const isGlobal = (option: string) => RKT_GLOBAL_OPTIONS.includes(optionName(option))
  const isVolume = (option: string) => volumeName(option) !== undefined
  const userVolumes = new Set(optionsBefore.map(volumeName).filter((name) => name !== undefined))
  const volumes = fromFile.filter((volume) => !userVolumes.has(volume.name))
  const userTrusts = optionsBefore.some((option) => optionName(option) === '--insecure-options')
  const global = optionsBefore.filter(isGlobal)
  const trust = userTrusts ? [] : trustOptions(signed)
  const viaPodManifest: PodRun = {
    fetchArgs: [...global, 'fetch', ...trust, image],
    runArgs: (file) => {
      if (optionsAfter.length > 0)
        throw new UserError(
          `rkt takes a pod manifest for this many volumes, and per-app options cannot go with one: ${optionsAfter.join(' ')}`,
        )
      return [
        ...global,
        'run',
        ...trust,
        ...optionsBefore.filter((o) => !isGlobal(o) && !isVolume(o)),
        `--pod-manifest=${file}`,
      ]
    },
    podManifest: (imageId, manifest) => {
      const theirs = parseMountsFile(optionsBefore.filter(isVolume).join(' '), 'run')
      const app = manifest.app
      return {
        acKind: 'PodManifest',
        acVersion: POD_MANIFEST_VERSION,
        apps: [
          {
            name: toAcName(manifest.name.split('/').at(-1)!),
            image: { id: imageId, name: manifest.name },
            // The app's arguments, which rkt appends to exec on a command line, extend it here.
            ...(app && appArgs.length > 0 ? { app: { ...app, exec: [...(app.exec ?? []), ...appArgs] } } : {}),
          },
        ],
        volumes: [...volumes, ...theirs].map(({ name, source, readOnly }) => ({
          name,
          kind: 'host',
          source,
          ...(readOnly ? { readOnly } : {}),
        })),
      }
    },
  }
  return {
    args: [
      ...global,
      'run',
      ...trust,
      ...optionsBefore.filter((option) => !isGlobal(option)),
      ...volumes.map(volumeArgument),
      image,
      ...optionsAfter,
      ...(appArgs.length > 0 ? ['--', ...appArgs] : []),
    ],
    volumes,
    viaPodManifest,
    fetchLayers: (files) => [...global, 'fetch', ...trust, ...files],
  }
}

/**
 * The `rkt run` line to copy, with the volumes read from the .mounts file by the shell. A layered
 * image's layers are fetched into rkt's store first: rkt resolves a dependency by image ID from
 * there, and would try discovery by name for one it lacks.
 */
export function rktRunCommand(
  image: string,
  mountsFile: string | null,
  signed: boolean,
  layers: string[] = [],
): string {
  const volumes = mountsFile ? ` $(cat ${shellQuote([displayPath(mountsFile)])})` : ''
  const run = `${shellQuote(['sudo', 'rkt', 'run', ...trustOptions(signed)])}${volumes} ${shellQuote([displayPath(image)])}`
  if (layers.length === 0) return run
  return `${shellQuote(['sudo', 'rkt', 'fetch', ...trustOptions(signed), ...layers.map(displayPath)])} && ${run}`
}
