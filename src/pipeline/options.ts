// Every option of one image build, declared once: `thin`/`fat` make their yargs options from this
// table and `nix2aci build` checks each spec field by it. The manifest options come from the plan.
import { COMPRESSIONS, DEFAULT_COMPRESSION } from '../aci/compression.js'
import { DEFAULT_ENGINE, ENGINES } from '../engines/engine.js'
import { MANIFEST_OPTIONS } from '../plan/app-options.js'
import type { OptionTable, OptionValues } from '../plan/options.js'

/** How an image is built and saved, beside what its manifest says. */
export const BUILD_OPTIONS = {
  file: {
    type: 'string',
    alias: 'f',
    describe: 'Nix expression to take packages from (default <nixpkgs> from NIX_PATH)',
  },
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

export const IMAGE_OPTIONS = { ...BUILD_OPTIONS, ...MANIFEST_OPTIONS } as const satisfies OptionTable

export type ImageOptionValues = OptionValues<typeof IMAGE_OPTIONS>
