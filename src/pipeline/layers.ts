// A layered build's layers: the ones the shared layers folder has already (checked by content) are
// kept, the others written; all of them are staged, for the outputs' commit to put in place.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { link, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { signatureFileOf } from '../aci/files.js'
import type { Dependency } from '../aci/manifest.js'
import { signImage } from '../aci/sign.js'
import { recordFileOf, type LayerPlan } from '../plan/layers.js'

/**
 * Beside each layer, `<layer>.id`: what it held when written. A layer is taken as it is when its
 * size and the sha256 of its file match: hashing the compressed file costs a fraction of packing
 * and compressing the store paths again, and a file of the right name with other bytes fails it.
 */
export interface LayerRecord {
  imageId: string
  sha256: string
  size: number
}

export interface LayersResult {
  dependencies: Dependency[]
  /** Files of the staged layers folder, for the commit. */
  staged: string[]
  written: string[]
  kept: string[]
}

interface Folders {
  /** The shared layers folder. */
  final: string
  /** This build's staged layers folder. */
  staged: string
}

/** Writes a layer's file; resolves to its image ID. */
export type WriteLayer = (layer: LayerPlan, output: string, signal: AbortSignal) => Promise<{ imageId: string }>

/**
 * Stages every layer: a kept one as a hard link to the shared file, so that a `prune` running
 * meanwhile cannot take its content away before the commit, a new one written.
 */
export async function stageLayers(
  layers: readonly LayerPlan[],
  folders: Folders,
  writeLayer: WriteLayer,
  options: { signal: AbortSignal; sign?: { key?: string }; onLayer?: (file: string) => void },
): Promise<LayersResult> {
  await mkdir(folders.staged)
  const { sign } = options
  // The first failure stops the other layer's write too; the failure is thrown once both have settled.
  const stop = new AbortController()
  const signal = AbortSignal.any([options.signal, stop.signal])
  // A written layer's record is hashed from the file (in the page cache) while the next layer is
  // written: the read-back then overlaps the next compression instead of following it.
  const recording: Promise<void>[] = []
  const stageOne = async (layer: LayerPlan): Promise<StagedLayer> => {
    options.onLayer?.(layer.file)
    const final = join(folders.final, layer.file)
    const staged = join(folders.staged, layer.file)
    const files = [layer.file, recordFileOf(layer.file)]
    const keptRecord = await keptLayer(final, staged, signal)
    const kept = keptRecord !== undefined
    const imageId = keptRecord?.imageId ?? (await writeLayer(layer, staged, signal)).imageId
    if (!kept) {
      const record = Promise.all([sha256Of(staged, signal), stat(staged)]).then(([sha256, { size }]) =>
        writeFile(recordFileOf(staged), JSON.stringify({ imageId, sha256, size } satisfies LayerRecord)),
      )
      record.catch(() => undefined) // settled below, before staging can be taken away
      recording.push(record)
    }
    if (sign) {
      const signature = signatureFileOf(staged)
      const linked =
        kept &&
        (await link(signatureFileOf(final), signature).then(
          () => true,
          () => false,
        ))
      if (!linked) await signImage(staged, signature, sign.key, signal)
      files.push(signatureFileOf(layer.file))
    }
    return { layer, imageId, kept, files }
  }
  // Two at a time, last first. The plan ends with the group of the least shared paths, most often the
  // largest layer, which pigz compresses on every core; the small ones beside it are gzipped whole in
  // the threadpool (see the native writer), each on one core, and would leave the others idle alone.
  const stagedLayers: StagedLayer[] = new Array(layers.length)
  let next = layers.length - 1
  let failure: { error: unknown } | undefined
  const worker = async () => {
    for (let index = next--; index >= 0 && !signal.aborted; index = next--)
      stagedLayers[index] = await stageOne(layers[index]!).catch((error: unknown) => {
        failure ??= { error }
        stop.abort(error)
        throw error
      })
  }
  // Nothing writes into staging any more once both workers and every record have settled.
  await Promise.allSettled([worker(), worker()])
  const recorded = (await Promise.allSettled(recording)).find((result) => result.status === 'rejected')
  options.signal.throwIfAborted()
  if (failure) throw failure.error
  if (recorded) throw recorded.reason
  return {
    dependencies: stagedLayers.map(({ layer, imageId }) => ({
      imageName: layer.name,
      imageID: imageId,
      labels: layer.labels,
    })),
    staged: stagedLayers.flatMap(({ files }) => files),
    written: stagedLayers.filter(({ kept }) => !kept).map(({ layer }) => layer.file),
    kept: stagedLayers.filter(({ kept }) => kept).map(({ layer }) => layer.file),
  }
}

interface StagedLayer {
  layer: LayerPlan
  imageId: string
  kept: boolean
  files: string[]
}

/** The record of the shared layer when its file is what was written, linked into staging; else undefined. */
async function keptLayer(final: string, staged: string, signal: AbortSignal): Promise<LayerRecord | undefined> {
  // Missing or damaged (not JSON): no record, so the layer is written anew.
  const record = await readFile(recordFileOf(final), 'utf8')
    .then((text) => JSON.parse(text) as LayerRecord | null)
    .catch(() => undefined)
  if (!record) return undefined
  try {
    const { size } = await stat(final)
    if (size !== record.size || (await sha256Of(final, signal)) !== record.sha256) return undefined
    await link(final, staged)
    await link(recordFileOf(final), recordFileOf(staged))
    return record
  } catch (error) {
    signal.throwIfAborted()
    // Gone meanwhile (another build replacing it, a prune): written anew.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    await rm(staged, { force: true })
    return undefined
  }
}

async function sha256Of(file: string, signal: AbortSignal): Promise<string> {
  const hash = createHash('sha256')
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), hash, { signal })
  return hash.digest('hex')
}
