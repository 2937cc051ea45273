// `nix2aci build`: many images from one spec, independent builds side by side, one Nix evaluation
// shared by all the images that read the same expression.
import { availableParallelism } from 'node:os'
import { instantiateAttrs, type NixSource } from '../nix/profile.js'
import { NO_NIX_OPTIONS, defaultExpression, isStorePath, looksLikeAttrPath } from '../nix/selectors.js'
import { UserError, messageOf } from '../util/errors.js'
import { buildImage, type BuildRequest, type BuildResult, type Progress } from './build-image.js'
import type { SpecEntry } from './spec.js'

/** A failure's `details` are what a tool showed about it (a failed Nix build's last log lines), when it showed any. */
export type ImageOutcome =
  | { name: string; ok: true; result: BuildResult }
  | { name: string; ok: false; error: string; details?: readonly string[] }

/** Once `signal` aborts, no further image starts; the running ones undo their work, then this rejects. */
export async function buildMany(
  entries: readonly SpecEntry[],
  progressFor: (name: string) => Progress,
  signal: AbortSignal,
): Promise<ImageOutcome[]> {
  const requests = await shareEvaluation(entries, signal)
  const outcomes: ImageOutcome[] = new Array(entries.length)
  let next = 0
  const worker = async () => {
    for (let i = next++; i < entries.length && !signal.aborted; i = next++) {
      const entry = requests[i]!
      if ('error' in entry) {
        outcomes[i] = { name: entry.name, ok: false, error: entry.error }
        continue
      }
      try {
        outcomes[i] = {
          name: entry.name,
          ok: true,
          result: await buildImage(entry.request, progressFor(entry.name), signal),
        }
      } catch (error) {
        const details = error instanceof UserError ? error.details : []
        outcomes[i] = {
          name: entry.name,
          ok: false,
          error: messageOf(error),
          ...(details.length > 0 ? { details } : {}),
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(availableParallelism(), entries.length) }, worker))
  signal.throwIfAborted()
  return outcomes
}

/**
 * Instantiates, per Nix expression that two or more images read, every attribute path they name in
 * one nix-instantiate call (the expressions side by side), and hands each image its derivations.
 * Images alone with their expression, whose packages are not all attribute paths, or whose
 * expression does not evaluate, keep their own resolution (and its precise errors).
 */
async function shareEvaluation(entries: readonly SpecEntry[], signal: AbortSignal): Promise<SpecEntry[]> {
  type Buildable = Extract<SpecEntry, { request: BuildRequest }>
  // -A and -E are evaluated by the image's own build; Nix options would have to be alike to share.
  const shareable = (entry: SpecEntry): entry is Buildable =>
    'request' in entry &&
    entry.request.packages.every((p) => isStorePath(p) || looksLikeAttrPath(p)) &&
    (entry.request.attrs ?? []).length === 0 &&
    entry.request.expr === undefined
  const sourceOf = (entry: Buildable): NixSource => ({
    expression: defaultExpression(entry.request.file, process.env.NIX_PATH),
    options: entry.request.nixOptions ?? NO_NIX_OPTIONS,
  })
  const sourceKey = (entry: Buildable) => JSON.stringify(sourceOf(entry))
  const attrsOf = (entry: Buildable) => entry.request.packages.filter((p) => !isStorePath(p))

  const bySource = new Map<string, { source: NixSource; images: number; attrs: Set<string> }>()
  for (const entry of entries.filter(shareable)) {
    const shared = bySource.get(sourceKey(entry)) ?? { source: sourceOf(entry), images: 0, attrs: new Set<string>() }
    shared.images++
    attrsOf(entry).forEach((attr) => shared.attrs.add(attr))
    bySource.set(sourceKey(entry), shared)
  }
  const drvByAttr = new Map<string, string>()
  const key = (source: string, attr: string) => `${source}\0${attr}`
  await Promise.all(
    [...bySource]
      .filter(([, shared]) => shared.images > 1)
      .map(async ([source, shared]) => {
        const list = [...shared.attrs]
        const drvs = await instantiateAttrs(list, shared.source, signal)
        drvs?.forEach((drv, i) => drvByAttr.set(key(source, list[i]!), drv))
      }),
  )
  return entries.map((entry) => {
    if (!shareable(entry)) return entry
    const instantiated = entry.request.packages.map((p) =>
      isStorePath(p) ? p : drvByAttr.get(key(sourceKey(entry), p)),
    )
    if (!instantiated.every((p): p is string => p !== undefined)) return entry
    return { ...entry, request: { ...entry.request, instantiated } }
  })
}
