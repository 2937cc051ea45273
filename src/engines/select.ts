// Picks an engine and loads it.
import type { Compression } from '../aci/compression.js'
import type { ImageKind } from '../plan/plan.js'
import { UserError } from '../util/errors.js'
import { findOnPath } from '../util/exec.js'
import type { Engine, EngineChoice, WriteImage } from './engine.js'

/**
 * `auto` is acbuild when it is on PATH and can keep the image's promises: gzip, and a thin image
 * (acbuild stamps entries with the build time, so a fat image it writes is not reproducible).
 */
export function chooseEngine(choice: EngineChoice, compression: Compression, kind: ImageKind): Engine {
  if (choice === 'native') return 'native'
  const installed = findOnPath('acbuild') !== undefined
  if (choice === 'auto') return installed && compression === 'gzip' && kind === 'thin' ? 'acbuild' : 'native'
  if (!installed)
    throw new UserError('--engine acbuild: acbuild is not installed (not on PATH); use --engine native or auto')
  if (compression !== 'gzip')
    throw new UserError(
      `--engine acbuild writes gzip images only; use --engine native for --compression ${compression}`,
    )
  return 'acbuild'
}

/** The title of the writing step, with what the user must know about the image that engine writes. */
export function writingStepTitle(engine: Engine, kind: ImageKind): string {
  const caveat =
    engine === 'acbuild' && kind !== 'thin' ? '; not reproducible: acbuild dates entries with the build time' : ''
  return `Writing the ${kind} image (${engine} engine${caveat})`
}

/**
 * Loads an engine's module (tar-stream or zx). Builds start this before the Nix work, so module
 * loading overlaps with nix-env instead of adding to it.
 */
export async function loadEngine(engine: Engine): Promise<WriteImage> {
  return engine === 'acbuild' ? (await import('./acbuild.js')).writeImage : (await import('./native.js')).writeImage
}
