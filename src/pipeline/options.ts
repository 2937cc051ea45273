// Every option of one image build, declared once: `thin`/`fat` make their yargs options from this
// table and `nix2aci build` checks each spec field by it. The manifest options come from the plan.
import { COMPRESSIONS, DEFAULT_COMPRESSION } from '../aci/compression.js'
import { DEFAULT_ENGINE, ENGINES } from '../engines/engine.js'
import type { PackageInputs } from '../nix/inputs.js'
import { NO_NIX_OPTIONS, type NixOptions } from '../nix/selectors.js'
import { MANIFEST_OPTIONS } from '../plan/app-options.js'
import { DEFAULT_LAYER_PREFIX, DEFAULT_MAX_LAYERS, checkLayerPrefix, parseMaxLayers } from '../plan/layers.js'
import type { OptionTable, OptionValues } from '../plan/options.js'

/** How an image is built and saved, beside what its manifest says. */
export const BUILD_OPTIONS = {
  file: {
    type: 'string',
    alias: 'f',
    describe: 'Nix expression to take packages from (default <nixpkgs> from NIX_PATH)',
  },
  attr: { type: 'strings', alias: 'A', describe: "an attribute path of -f's file (or of -E's value), as nix-build -A" },
  expr: { type: 'string', alias: 'E', describe: 'a Nix expression that evaluates to a package or a list of packages' },
  include: { type: 'strings', alias: 'I', describe: 'a search path entry for Nix, PATH or NAME=PATH, as nix-build -I' },
  arg: { type: 'pairs', describe: 'NAME EXPR: an argument for the Nix functions called, as nix-build --arg' },
  argstr: { type: 'pairs', describe: 'NAME VALUE: a string argument, as nix-build --argstr' },
  option: { type: 'pairs', describe: 'NAME VALUE: a Nix setting for every Nix call, as nix-build --option' },
  'show-trace': { type: 'boolean', default: false, describe: "show Nix's trace with an evaluation error" },
  engine: {
    type: 'choice',
    choices: ENGINES,
    default: DEFAULT_ENGINE,
    describe: 'acbuild, the native writer, or acbuild when installed',
  },
  compression: {
    type: 'choice',
    choices: COMPRESSIONS,
    default: DEFAULT_COMPRESSION,
    describe: 'how the image is compressed',
  },
  'resolv-conf': {
    type: 'boolean',
    default: true,
    describe: "mount the host's /etc/resolv.conf (--no-resolv-conf drops it)",
  },
  validate: { type: 'boolean', default: true, describe: 'run actool validate when installed (--no-validate skips)' },
  sign: {
    type: 'boolean',
    default: false,
    describe: 'sign the image with gpg: <name>.aci.asc (GNUPGHOME is honoured)',
  },
  key: {
    type: 'string',
    needs: 'sign',
    describe: "with --sign, the gpg key to sign with (default: gpg's default key)",
  },
} as const satisfies OptionTable

/** What only a layered image takes. */
export const LAYER_OPTIONS = {
  'max-layers': {
    type: 'number',
    describe: `layered: at most this many layers; the most referenced paths get their own, the rest share the last (default ${DEFAULT_MAX_LAYERS})`,
  },
  'layer-prefix': {
    type: 'string',
    describe: `layered: what the layers' names start with, a host that serves them by discovery (default ${DEFAULT_LAYER_PREFIX})`,
  },
} as const satisfies OptionTable

/** The layer options given, with their defaults. */
export function layerOptionsOf(values: OptionValues<typeof LAYER_OPTIONS>): { maxLayers: number; prefix: string } {
  const prefix = values.layerPrefix ?? DEFAULT_LAYER_PREFIX
  checkLayerPrefix(prefix)
  return { maxLayers: values.maxLayers === undefined ? DEFAULT_MAX_LAYERS : parseMaxLayers(values.maxLayers), prefix }
}

export const IMAGE_OPTIONS = { ...BUILD_OPTIONS, ...MANIFEST_OPTIONS } as const satisfies OptionTable

export type ImageOptionValues = OptionValues<typeof IMAGE_OPTIONS>

/** The options of BUILD_OPTIONS that every Nix evaluation gets; `nix2aci build` takes them for its spec. */
export const NIX_OPTION_NAMES = ['include', 'arg', 'argstr', 'option', 'show-trace'] as const

type NixOptionValues = Pick<ImageOptionValues, 'include' | 'arg' | 'argstr' | 'option' | 'showTrace'>

/** `--arg a 1 --arg b 2` comes as `[a, 1, b, 2]` from the command line, as `{a: 1, b: 2}` from a spec. */
function pairsOf(value: string[] | Record<string, string> | undefined): Record<string, string> {
  if (!Array.isArray(value)) return { ...value }
  const pairs: Record<string, string> = {}
  for (let i = 0; i + 1 < value.length; i += 2) pairs[value[i]!] = value[i + 1]!
  return pairs
}

/** The Nix options given, over `defaults` (a spec entry's over the command line's). */
export function nixOptionsOf(values: NixOptionValues, defaults: NixOptions = NO_NIX_OPTIONS): NixOptions {
  return {
    include: [...defaults.include, ...(values.include ?? [])],
    arg: { ...defaults.arg, ...pairsOf(values.arg) },
    argstr: { ...defaults.argstr, ...pairsOf(values.argstr) },
    option: { ...defaults.option, ...pairsOf(values.option) },
    showTrace: values.showTrace ?? defaults.showTrace,
  }
}

/** What names the packages: the positional ones, `-A`, `-E` and the Nix options. */
export function packageInputsOf(
  packages: readonly string[],
  values: ImageOptionValues,
  defaults?: NixOptions,
): PackageInputs {
  return {
    packages,
    attrs: values.attr ?? [],
    ...(values.expr !== undefined ? { expr: values.expr } : {}),
    nixOptions: nixOptionsOf(values, defaults),
  }
}
