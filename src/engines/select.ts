// Picks and runs an engine.
import type { ImagePlan } from '../plan/plan.js'
import { UserError } from '../util/errors.js'
import { findOnPath } from '../util/exec.js'
import type { EngineChoice, EngineOptions, EngineResult } from './engine.js'
import { writeNativeImage } from './native.js'

export type Engine = 'acbuild' | 'native'

/** `auto` is acbuild when it is on PATH, the native writer otherwise. */
export async function chooseEngine(choice: EngineChoice): Promise<Engine> {
  if (choice === 'native') return 'native'
  const installed = (await findOnPath('acbuild')) !== undefined
  if (choice === 'acbuild' && !installed)
    throw new UserError('--engine acbuild: acbuild is not installed (not on PATH); use --engine native or auto')
  return installed ? 'acbuild' : 'native'
}

export async function writeImage(
  engine: Engine,
  plan: ImagePlan,
  output: string,
  options: Omit<EngineOptions, 'pigz'> & { staging: string },
): Promise<EngineResult> {
  if (engine === 'acbuild') {
    const { writeWithAcbuild } = await import('./acbuild.js')
    return writeWithAcbuild(plan, output, options)
  }
  // Parallel gzip pays off only when there is a closure to compress.
  const pigz = plan.storePaths.length > 0 ? await findOnPath('pigz') : undefined
  return writeNativeImage(plan, output, { ...options, pigz })
}
