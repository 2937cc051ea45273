// The engine seam: every engine is one `WriteImage`, a plan in and an .aci file out.
import type { Compression } from '../aci/compression.js'
import type { ImagePlan } from '../plan/plan.js'

export const ENGINES = ['auto', 'acbuild', 'native'] as const
export type EngineChoice = (typeof ENGINES)[number]
export const DEFAULT_ENGINE: EngineChoice = 'auto'
/** An engine that writes images; `auto` resolves to one of these. */
export type Engine = Exclude<EngineChoice, 'auto'>

export interface WriteOptions {
  compression: Compression
  /** A directory of the build's own, for an engine's scratch files; removed with the build. */
  staging: string
  /** Aborts the write: its processes and streams stop, and the write rejects. */
  signal: AbortSignal
}

export interface EngineResult {
  /** `sha512-` of the uncompressed tar, as rkt names images. */
  imageId: string
}

export type WriteImage = (plan: ImagePlan, output: string, options: WriteOptions) => Promise<EngineResult>
