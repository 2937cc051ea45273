// `nix2aci publish`: images, their layers, signatures and the signer's key copied into a static appc
// discovery tree (aci/discovery.ts). Everything is checked before a file is written; files go in by
// temp+rename, the key next, the pages last, so a page never names what is not there yet.
import { copyFile, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { layerFileOf } from '../aci/layers.js'
import {
  PAGE_FILE,
  PUBKEYS_FILE,
  discoveryPage,
  imageFileIn,
  pageFolders,
  parseUrlPrefix,
  pathUnderPrefix,
  type UrlPrefix,
} from '../aci/discovery.js'
import { exists, signatureFileOf } from '../aci/files.js'
import { readManifest } from '../aci/inspect.js'
import { requireGpg } from '../aci/sign.js'
import type { NameValue } from '../aci/manifest.js'
import { UserError } from '../util/errors.js'
import { CommandError, errorLine, run } from '../util/exec.js'

export interface PublishOptions {
  to: string
  urlPrefix: string
  /** The key whose public half goes into pubkeys.gpg; default: the signatures' own signers. */
  key?: string
}

interface Entry {
  source: string
  name: string
  /** Relative to the published folder. */
  target: string
  signed: boolean
}

export interface PublishResult {
  prefix: string
  images: { name: string; version: string; url: string }[]
  layers: number
  pubkeys: string | null
}

const label = (labels: readonly NameValue[] | undefined, name: string) =>
  labels?.find((entry) => entry.name === name)?.value

export async function publish(images: readonly string[], options: PublishOptions, signal: AbortSignal) {
  const prefix = parseUrlPrefix(options.urlPrefix)
  const entries = new Map<string, Entry>()
  const published: PublishResult['images'] = []
  const add = async (source: string, name: string, labels: NameValue[] | undefined, what: string) => {
    const relative = pathUnderPrefix(name, prefix.namePrefix)
    if (relative === undefined)
      throw new UserError(
        `${what} ${name} is not under the published prefix ${prefix.namePrefix}/` +
          (what === 'layer' ? ` (build with --layer-prefix ${prefix.namePrefix}/layers)` : ''),
      )
    const [version, os, arch] = ['version', 'os', 'arch'].map((key) => label(labels, key))
    if (!version) throw new UserError(`${what} ${name} (${source}) has no version label, which discovery needs`)
    if (!os || !arch) throw new UserError(`${what} ${name} (${source}) has no os or arch label, which discovery needs`)
    const target = imageFileIn(relative, { version, os, arch })
    const other = entries.get(target)
    if (other && other.source !== source)
      throw new UserError(`${source} and ${other.source} are both ${name} version ${version}`)
    entries.set(target, { source, name, target, signed: await exists(signatureFileOf(source)) })
    return { version, target }
  }
  for (const image of images) {
    const manifest = await readManifest(image, signal)
    const { version, target } = await add(image, manifest.name, manifest.labels, 'image')
    published.push({ name: manifest.name, version, url: `${prefix.scheme}://${prefix.namePrefix}/${target}` })
    for (const dependency of manifest.dependencies ?? []) {
      const file = layerFileOf(image, dependency)
      if (!(await exists(file))) throw new UserError(`layer ${dependency.imageName} of ${image} is missing: no ${file}`)
      await add(file, dependency.imageName, dependency.labels, 'layer')
    }
  }
  const signers = await signersOf([...entries.values()], options.key, signal)

  await mkdir(options.to, { recursive: true })
  for (const entry of entries.values()) {
    const target = join(options.to, entry.target)
    await mkdir(dirname(target), { recursive: true })
    await placeFile(entry.source, target)
    if (entry.signed) await placeFile(signatureFileOf(entry.source), signatureFileOf(target))
    else await rm(signatureFileOf(target), { force: true })
  }
  const pubkeys = join(options.to, PUBKEYS_FILE)
  if (signers.length > 0) await writeKeyring(pubkeys, signers, signal)
  await writePages(
    options.to,
    prefix,
    [...entries.values()].map((entry) => pathUnderPrefix(entry.name, prefix.namePrefix)!),
  )
  return {
    prefix: prefix.namePrefix,
    images: published,
    layers: entries.size - published.length,
    pubkeys: (await exists(pubkeys)) ? pubkeys : null,
  } satisfies PublishResult
}

/** Copied beside the target, then renamed over it: a reader sees the old file or the new, whole. */
async function placeFile(source: string, target: string): Promise<void> {
  const temporary = join(dirname(target), `.${process.pid}.publishing`)
  try {
    await copyFile(source, temporary)
    await rename(temporary, target)
  } finally {
    await rm(temporary, { force: true })
  }
}

/** The keys to publish: `--key`, else the primary key of every signature's signer, each verified first. */
async function signersOf(entries: readonly Entry[], key: string | undefined, signal: AbortSignal): Promise<string[]> {
  const signed = entries.filter((entry) => entry.signed)
  if (signed.length === 0 && !key) return []
  const gpg = requireGpg('publish')
  const signers = new Set<string>(key ? [key] : [])
  for (const entry of signed) {
    const status = await run(
      gpg,
      ['--batch', '--status-fd', '1', '--verify', signatureFileOf(entry.source), entry.source],
      {
        signal,
      },
    ).catch((error: unknown) => {
      if (!(error instanceof CommandError)) throw error
      throw new UserError(
        `the signature of ${entry.source} does not verify: ${errorLine(error.stderr, 'gpg: ') ?? `exit ${error.exitCode}`}`,
      )
    })
    // VALIDSIG <signing key fpr> ... <primary key fpr>: rkt trusts the primary key.
    const validsig = /^\[GNUPG:\] VALIDSIG (.*)$/m.exec(status.stdout)?.[1]?.split(' ')
    if (!validsig) throw new UserError(`gpg printed no valid signature for ${entry.source}`)
    if (!key) signers.add(validsig.at(-1)!)
  }
  return [...signers]
}

/**
 * pubkeys.gpg: one armoured keyring (rkt trust reads the first armour block only) of the keys there
 * already and `keys`, merged in a scratch gpg home so the user's keyring is only read.
 */
async function writeKeyring(file: string, keys: readonly string[], signal: AbortSignal): Promise<void> {
  const gpg = requireGpg('publish')
  const scratch = await mkdtemp(join(tmpdir(), 'nix2aci-publish-'))
  try {
    const exported = join(scratch, 'new.gpg')
    await run(gpg, ['--batch', '--yes', '--output', exported, '--export', ...keys], { signal })
    const home = ['--batch', '--homedir', join(scratch, 'home')]
    await mkdir(join(scratch, 'home'), { mode: 0o700 })
    const known = (await exists(file)) ? [file] : []
    for (const keyring of [...known, exported]) await run(gpg, [...home, '--import', keyring], { signal })
    const merged = `${file}.${process.pid}.publishing`
    try {
      await run(gpg, [...home, '--yes', '--armor', '--output', merged, '--export'], { signal })
      await rename(merged, file)
    } finally {
      await rm(merged, { force: true })
    }
  } catch (error) {
    if (!(error instanceof CommandError)) throw error
    throw new UserError(`publish: gpg could not export ${keys.join(', ')}: ${errorLine(error.stderr, 'gpg: ')}`)
  } finally {
    await run('gpgconf', ['--homedir', join(scratch, 'home'), '--kill', 'gpg-agent']).catch(() => undefined)
    await rm(scratch, { recursive: true, force: true })
  }
}

/** The pages, last: every folder a name may be discovered from, each listing all images of the tree. */
async function writePages(root: string, prefix: UrlPrefix, names: readonly string[]): Promise<void> {
  const tree = await readdir(root, { recursive: true })
  const images = tree
    .filter((file) => file.endsWith('.aci'))
    .sort()
    .map((file) => `${prefix.scheme}://${prefix.namePrefix}/${file}`)
  const page = discoveryPage(prefix, await exists(join(root, PUBKEYS_FILE)), images)
  const pageNames = new Set(names)
  for (const file of tree) if (file.endsWith(`/${PAGE_FILE}`)) pageNames.add(file.slice(0, -PAGE_FILE.length - 1))
  for (const folder of pageFolders([...pageNames])) {
    const target = join(root, folder, PAGE_FILE)
    await mkdir(dirname(target), { recursive: true })
    const temporary = `${target}.${process.pid}.publishing`
    await writeFile(temporary, page)
    await rename(temporary, target)
  }
}
