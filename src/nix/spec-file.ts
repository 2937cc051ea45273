// A spec written in Nix (`nix2aci build images.nix`): evaluated once, to the JSON spec's structure.
import { resolve } from 'node:path'
import { run } from '../util/exec.js'
import { checkArgExpressions } from './inputs.js'
import { nixError } from './profile.js'
import { nixOptionArgs, type NixOptions } from './selectors.js'

/**
 * Loads the spec (calling it with the `--arg`s it asks for, if it is a function) and renders each
 * image's packages as `{ drvPath, outputs }` (anything else neither a package nor a string as
 * `{ notAPackage = TYPE }`, which pipeline/spec.ts reads): JSON has no packages, and a derivation would otherwise
 * come out as its output path, which need not exist. Fields are left as the file gives them, for
 * the spec checker to judge; given as -E, the wrapper's frames in a trace read «string».
 */
const WRAPPER = `{ __nix2aciSpecFile, ... }@args:
let
  loaded = import __nix2aciSpecFile;
  spec = if builtins.isFunction loaded
    then loaded (builtins.intersectAttrs (builtins.functionArgs loaded) (removeAttrs args [ "__nix2aciSpecFile" ]))
    else loaded;
  package = p:
    if builtins.isAttrs p && (p.type or null) == "derivation"
    then { drvPath = p.drvPath; outputs = p.meta.outputsToInstall or [ (p.outputName or "out") ]; }
    else if builtins.isString p then p
    else { notAPackage = builtins.typeOf p; };
  image = i: if builtins.isAttrs i && builtins.isList (i.packages or null) then i // { packages = map package i.packages; } else i;
in
if builtins.isAttrs spec && builtins.isList (spec.images or null) then spec // { images = map image spec.images; } else spec
`

/**
 * One `nix-instantiate --eval --strict --json` of the whole file. Read-write mode writes the
 * derivations it computes, so that each image's build can realise them.
 */
export async function evaluateSpecFile(file: string, options: NixOptions, signal: AbortSignal): Promise<unknown> {
  await checkArgExpressions(options, signal)
  const args = ['--eval', '--strict', '--json', '--read-write-mode', '-E', WRAPPER]
  const { stdout } = await run(
    'nix-instantiate',
    [...args, '--argstr', '__nix2aciSpecFile', resolve(file), ...nixOptionArgs(options)],
    { signal },
  ).catch((error: unknown) => {
    throw nixError(`cannot evaluate ${file}`, error)
  })
  return JSON.parse(stdout) as unknown
}
