// Picks an engine and loads it.
import type { Compression } from '../aci/compression.js'
import type { ImagePlan } from '../plan/plan.js'
import { UserError } from '../util/errors.js'
import { findOnPath } from '../util/exec.js'
import type { EngineChoice, EngineOptions, EngineResult } from './engine.js'

export type Engine = 'acbuild' | 'native'

export type WriteImage = (
  plan: ImagePlan,
  output: string,
  options: Omit<EngineOptions, 'pigz'> & { staging: string },
) => Promise<EngineResult>

/** `auto` is acbuild when it is on PATH and can write the compression asked for, the native writer otherwise. */
export function chooseEngine(choice: EngineChoice, compression: Compression): Engine {
  if (choice === 'native') return 'native'
  const installed = findOnPath('acbuild') !== undefined
  if (choice === 'auto') return installed && compression === 'gzip' ? 'acbuild' : 'native'
  if (!installed)
    throw new UserError('--engine acbuild: acbuild is not installed (not on PATH); use --engine native or auto')
  if (compression !== 'gzip')
    throw new UserError(
      `--engine acbuild writes gzip images only; use --engine native for --compression ${compression}`,
    )
  return 'acbuild'
}

/**
 * Loads an engine's module (tar-stream or zx). Builds start this before the Nix work, so module
 * loading overlaps with nix-env instead of adding to it.
 */
export async function loadEngine(engine: Engine): Promise<WriteImage> {
  if (engine === 'acbuild') {
    const { writeWithAcbuild } = await import('./acbuild.js')
    return writeWithAcbuild
  }
  const { writeNativeImage } = await import('./native.js')
  return async (plan, output, options) => {
    // Parallel gzip pays off only when there is a closure to compress.
    const pigz = plan.storePaths.length > 0 ? findOnPath('pigz') : undefined
    return writeNativeImage(plan, output, { ...options, pigz })
  }
}
