// What every engine takes and gives: a plan in, an .aci file out.
import type { Compression } from '../aci/compression.js'

export const ENGINES = ['auto', 'acbuild', 'native'] as const
export type EngineChoice = (typeof ENGINES)[number]
export const DEFAULT_ENGINE: EngineChoice = 'auto'

export interface EngineOptions {
  compression: Compression
  /** Path of pigz, to compress a large image on every core. */
  pigz?: string
  /** Aborts the write: its processes and streams stop, and the write rejects. */
  signal: AbortSignal
}

export interface EngineResult {
  /** `sha512-` of the uncompressed tar, as rkt names images. */
  imageId: string
}
