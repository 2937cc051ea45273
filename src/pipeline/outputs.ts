// The files one build leaves in its out-dir (.aci, .mounts, .aci.asc, the thin profile), saved as one
// unit: open stages them beside the outputs under a lock per name, commit puts the whole set in
// place, close takes back whatever was not committed (umoci's stage-then-commit).
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { rm } from 'node:fs/promises'
import { basename, dirname, join, relative, resolve } from 'node:path'
import { profileFileOf, signatureFileOf } from '../aci/files.js'
import { pruneLayers, type PruneResult } from '../aci/layers.js'
import { mountsFileOf } from '../aci/mounts.js'
import { layersFolderOf } from '../plan/layers.js'
import { profileState, pruneProfile, removeProfile, restoreProfile, type ProfileState } from '../nix/profile.js'
import type { ImageKind } from '../plan/plan.js'
import { UserError, messageOf } from '../util/errors.js'
import { lock, tryLock, type Lock } from '../util/lock.js'
import { displayPath } from '../util/paths.js'

/** `example.com/etcd` is a valid image name but not a file name. */
export function imageFileBase(name: string): string {
  return name.replaceAll('/', '-')
}

/** `layers`: the layers folder, shared by every image of the out-dir (staged: this build's layers). */
type Files = { image: string; mounts: string; signature: string; layers: string }

export interface FinalOutputs extends Files {
  profile: string
}

export interface StagedOutputs extends Files {
  /** Beside the outputs, so that each rename into place is atomic; engines may work in it too. */
  dir: string
  /** Where nix-env installs: a thin image's own profile (its GC root from the start), for a fat one staging. */
  profile: string
}

/**
 * What a commit does, written before it starts (one atomic rename): a build that finds it, under
 * the lock, finishes the commit that a crash cut short. Names are relative to the out-dir.
 */
interface Journal {
  staging: string
  renames: [from: string, to: string][]
  removals: string[]
  profile: 'prune' | 'remove'
}

/** In a staging dir: the thin profile as it was before this build, to put back if the build dies. */
const PROFILE_BEFORE = 'profile-before.json'
const STAGING_DIR = /^\.(.+)\.building-[A-Za-z0-9]{6}$/
const JOURNAL = /^\.(.+)\.commit$/

const journalOf = (outDir: string, base: string) => join(outDir, `.${base}.commit`)
const profileOf = (outDir: string, base: string) => profileFileOf(join(outDir, `${base}.aci`))
const lockKeyOf = (outDir: string, base: string) => `${realpathSync(outDir)}/${base}`

/**
 * Takes the shared layers folder's lock, held by a commit while it renames layers in and by prune, so
 * that a prune never reads the images before such a commit and removes the layers after it. Its key
 * ends in `/`, which no name's key does. Uncontended, it is taken at once, with no await.
 */
export function lockLayersFolder(outDir: string, onWait: OnWait, signal: AbortSignal): Lock | Promise<Lock> {
  const key = `${layersFolderOf(realpathSync(outDir))}/`
  return tryLock(key) ?? lock(key, onWait, signal)
}

const renamesLayers = (journal: Journal) => journal.renames.some(([, to]) => dirname(to) !== '.')

/** Given a wait for a lock, once, to show it; resolves with the lock. */
export type OnWait = (waiting: Promise<Lock>) => Promise<Lock>

export class ImageOutputs {
  readonly outDir: string
  readonly final: FinalOutputs
  private readonly base: string
  private lock: Lock | undefined
  private signal: AbortSignal | undefined
  private staged: StagedOutputs | undefined
  private profileBefore: ProfileState | undefined
  private committed: Promise<void> | undefined

  constructor(
    outDir: string,
    name: string,
    private readonly kind: ImageKind,
  ) {
    this.outDir = resolve(outDir)
    this.base = imageFileBase(name)
    const image = join(this.outDir, `${this.base}.aci`)
    this.final = {
      image,
      mounts: mountsFileOf(image),
      signature: signatureFileOf(image),
      layers: layersFolderOf(this.outDir),
      profile: profileOf(this.outDir, this.base),
    }
  }

  /**
   * Makes the out-dir, takes the name's lock (`onWait` shows a wait for another build of the name),
   * finishes or takes back what a killed build of the name left, and makes the staging directory.
   * Nothing waits when the name is free: nix-env starts as soon as this returns.
   */
  async open(onWait: OnWait, signal: AbortSignal): Promise<StagedOutputs> {
    makeOutDir(this.outDir)
    checkTargets(this.final)
    this.lock = await lock(lockKeyOf(this.outDir, this.base), onWait, signal)
    this.signal = signal
    const entries = readdirSync(this.outDir)
    await recoverLeftovers(this.outDir, this.base, entries, signal)
    await recoverOthersLeftovers(this.outDir, this.base, entries, signal)
    signal.throwIfAborted()
    const dir = makeStagingDir(this.outDir, this.base)
    if (this.kind === 'thin') {
      // Read before nix-env starts changing it, and kept on disk for the next build should this one die.
      this.profileBefore = profileState(this.final.profile)
      try {
        writeFileSync(join(dir, PROFILE_BEFORE), JSON.stringify(this.profileBefore))
      } catch (error) {
        throw this.writeError(error)
      }
    }
    this.staged = {
      dir,
      image: join(dir, 'image.aci'),
      mounts: join(dir, 'image.mounts'),
      signature: join(dir, 'image.aci.asc'),
      layers: join(dir, 'layers'),
      profile: this.kind === 'thin' ? this.final.profile : join(dir, 'profile'),
    }
    return this.staged
  }

  /**
   * Saves the staged set: the image, and a signature and .mounts file when it has them (an old one
   * it does not have is removed). The renames run synchronously, one after the other, once the list
   * of them is on disk: a crash half-way is finished by the next build of the name. `layers` are
   * the files of the staged layers folder, which go into the shared one before the image does, under
   * the layers folder's lock: `onLayersWait` shows a wait for it, which Ctrl-C ends with nothing saved.
   */
  async commit(
    has: { signed: boolean; volumes: boolean; layers?: readonly string[] },
    onLayersWait: OnWait = (waiting) => waiting,
  ): Promise<void> {
    const staged = this.staged
    if (!staged || !this.signal || this.committed)
      throw new Error('commit without an open, uncommitted staging directory')
    const layersLock =
      (has.layers ?? []).length > 0 ? await lockLayersFolder(this.outDir, onLayersWait, this.signal) : undefined
    checkTargets(this.final)
    const name = (path: string) => relative(this.outDir, path)
    const journal: Journal = { staging: name(staged.dir), renames: [], removals: [], profile: 'prune' }
    for (const [present, from, to] of [
      [has.signed, staged.signature, this.final.signature],
      [has.volumes, staged.mounts, this.final.mounts],
    ] as const) {
      if (present) journal.renames.push([name(from), name(to)])
      else journal.removals.push(name(to))
    }
    for (const file of has.layers ?? [])
      journal.renames.push([name(join(staged.layers, file)), name(join(this.final.layers, file))])
    journal.renames.push([name(staged.image), name(this.final.image)]) // last: the set is complete once it is there
    if (this.kind !== 'thin') journal.profile = 'remove' // a thin image of this name before had one
    try {
      try {
        const written = join(staged.dir, 'commit.json')
        writeFileSync(written, JSON.stringify(journal))
        renameSync(written, journalOf(this.outDir, this.base))
      } catch (error) {
        throw this.writeError(error)
      }
      this.committed = rollForward(this.outDir, this.base, journal)
    } finally {
      layersLock?.release() // the renames are done: rollForward makes them before its first await
    }
    return this.committed.catch((error: unknown) => {
      throw this.writeError(error)
    })
  }

  /**
   * Ends the transaction, however the build ended: takes back what was not committed (staging, the
   * profile's new generation, the out-dir this process made) and releases the lock.
   */
  async close(): Promise<void> {
    try {
      // A commit that failed half-way stays as its journal left it, staging too: the next build of the
      // name finishes it (nothing is put back under renames already made).
      const committed =
        this.committed &&
        (await this.committed.then(
          () => true,
          () => false,
        ))
      if (committed === false) return
      if (!committed && this.profileBefore) await restoreProfile(this.final.profile, this.profileBefore)
      if (this.staged) await rm(this.staged.dir, { recursive: true, force: true })
      if (!committed) removeMadeOutDir(this.outDir)
    } finally {
      this.lock?.release()
    }
  }

  /** A full disk or a read-only file system is the user's to fix, not a bug: say so in one line. */
  writeError(error: unknown): unknown {
    const { code, path } = error as NodeJS.ErrnoException
    // A store file that cannot be read is not the output directory's fault.
    const aboutOutput = path === undefined || path.startsWith(this.outDir)
    return aboutOutput && code && ['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EIO'].includes(code)
      ? new UserError(`cannot write the image to ${this.outDir}: ${messageOf(error)}`)
      : error
  }
}

/**
 * A directory where an output goes would stop a rename half-way (or fail its removal): refuse it
 * before anything is replaced, and before any Nix work.
 */
function checkTargets(final: FinalOutputs): void {
  for (const target of [final.image, final.mounts, final.signature, final.profile]) {
    const isDirectory = (() => {
      try {
        return lstatSync(target).isDirectory()
      } catch {
        return false
      }
    })()
    if (isDirectory) throw new UserError(`cannot save the image: ${displayPath(target)} is a directory`)
  }
}

/**
 * Does what a journal lists; each step is skipped when done already, so a rerun finishes it. The
 * renames run before the first await: synchronously, within the call.
 */
async function rollForward(outDir: string, base: string, journal: Journal): Promise<void> {
  const at = (name: string) => join(outDir, name)
  for (const [from, to] of journal.renames) {
    if (!existsSync(at(from))) continue
    // The layers folder is made by the first commit that puts a layer in it.
    if (dirname(to) !== '.') mkdirSync(dirname(at(to)), { recursive: true })
    renameSync(at(from), at(to))
  }
  for (const name of journal.removals) rmSync(at(name), { force: true })
  // The new profile generation is the image's now: nothing is to be put back.
  rmSync(join(at(journal.staging), PROFILE_BEFORE), { force: true })
  const profile = profileOf(outDir, base)
  await (journal.profile === 'prune' ? pruneProfile(profile) : removeProfile(profile))
  rmSync(journalOf(outDir, base), { force: true })
}

/**
 * Under the name's lock, what a build of it killed before (SIGKILL, a crash) left: a commit is
 * finished, a staging directory removed and the profile put back as that build found it.
 */
async function recoverLeftovers(
  outDir: string,
  base: string,
  entries: readonly string[],
  signal: AbortSignal,
): Promise<void> {
  if (entries.includes(basename(journalOf(outDir, base)))) {
    const journal = readJson<Journal>(journalOf(outDir, base))
    if (journal) {
      // Interrupted while it waits, the journal stays for the next build to finish.
      const layersLock = renamesLayers(journal) ? await lockLayersFolder(outDir, (w) => w, signal) : undefined
      try {
        await rollForward(outDir, base, journal)
      } finally {
        layersLock?.release()
      }
    } else rmSync(journalOf(outDir, base), { force: true })
  }
  for (const entry of entries) {
    if (STAGING_DIR.exec(entry)?.[1] !== base) continue
    const before = readJson<ProfileState>(join(outDir, entry, PROFILE_BEFORE))
    if (before) await restoreProfile(profileOf(outDir, base), before)
    await rm(join(outDir, entry), { recursive: true, force: true })
  }
}

/** Leftovers of other names, whose lock is free (no live build of them): they are taken care of too. */
async function recoverOthersLeftovers(
  outDir: string,
  base: string,
  entries: readonly string[],
  signal: AbortSignal,
): Promise<void> {
  const others = new Set(entries.map((entry) => (STAGING_DIR.exec(entry) ?? JOURNAL.exec(entry))?.[1]))
  for (const other of others) {
    if (other === undefined || other === base) continue
    const held = tryLock(lockKeyOf(outDir, other))
    if (!held) continue
    // Another name's leftovers are not this build's to fail on.
    await recoverLeftovers(outDir, other, entries, signal)
      .catch(() => signal.throwIfAborted())
      .finally(() => held.release())
  }
}

/**
 * `nix2aci prune`: under the layers folder's lock, so that no commit puts an image and its layers in
 * meanwhile, the layers that neither an image of the out-dir nor one a commit journal is about to
 * put there (a commit waiting for this lock, or one a crash cut short) depends on are removed.
 */
export async function pruneUnusedLayers(outDir: string, onWait: OnWait, signal: AbortSignal): Promise<PruneResult> {
  if (!existsSync(layersFolderOf(outDir))) return { removed: [], bytes: 0 }
  const held = await lockLayersFolder(outDir, onWait, signal)
  try {
    // A journal's last rename is always its image's (see commit).
    const pending = readdirSync(outDir)
      .filter((entry) => JOURNAL.test(entry))
      .map((entry) => readJson<Journal>(join(outDir, entry))?.renames.at(-1)?.[0])
      .filter((from) => from !== undefined)
      .map((from) => join(outDir, from))
    return await pruneLayers(outDir, pending)
  } finally {
    held.release()
  }
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T
  } catch {
    return undefined
  }
}

/**
 * Out-dirs this process made, each with the first directory made for it. Builds of one spec share
 * an out-dir that only one of them made; whichever fails last finds it empty and takes it away.
 */
const madeOutDirs = new Map<string, string>()

function makeOutDir(outDir: string): void {
  try {
    const made = makeDirs(outDir)
    if (made) madeOutDirs.set(outDir, made)
  } catch (error) {
    throw new UserError(`cannot write to the output directory ${outDir}: ${messageOf(error)}`)
  }
}

/**
 * Makes `dir` and its missing parents one level at a time and returns the first it made. Node's
 * recursive mkdir retries forever where a file system answers ENOENT to every mkdir (/proc).
 */
function makeDirs(dir: string): string | undefined {
  const missing: string[] = []
  for (let current = dir; ; current = dirname(current)) {
    const info = statSync(current, { throwIfNoEntry: false })
    if (info?.isDirectory()) break
    if (info) throw new Error(`${current} is not a directory`)
    missing.unshift(current)
  }
  for (const [i, level] of missing.entries()) {
    try {
      mkdirSync(level)
    } catch (error) {
      if (i > 0) removeEmptyDirs(dirname(level), missing[0]!)
      throw error
    }
  }
  return missing[0]
}

function makeStagingDir(outDir: string, base: string): string {
  try {
    return mkdtempSync(join(outDir, `.${base}.building-`))
  } catch (error) {
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
