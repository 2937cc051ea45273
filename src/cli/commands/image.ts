// `nix2aci thin` and `nix2aci fat`: options in, one build, a report out.
import { COMPRESSIONS, DEFAULT_COMPRESSION } from '../../aci/compression.js'
import { buildImage } from '../../pipeline/build-image.js'
import { DEFAULT_ENGINE, ENGINES } from '../../engines/engine.js'
import { parseAppOptions } from '../../plan/app-options.js'
import type { ImageKind } from '../../plan/plan.js'
import type { GlobalArgs } from '../main.js'
import { createProgress, progressStyle } from '../progress.js'
import { describeBuild } from '../report.js'

const imageOptions = {
  file: {
    alias: 'f',
    type: 'string',
    describe: 'Nix expression to take packages from (default <nixpkgs> from NIX_PATH)',
  },
  engine: {
    choices: ENGINES,
    default: DEFAULT_ENGINE,
    describe: 'acbuild, the native writer, or acbuild when installed',
  },
  compression: { choices: COMPRESSIONS, default: DEFAULT_COMPRESSION, describe: 'how the image is compressed' },
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
  key: { type: 'string', describe: "the gpg key to sign with (default: gpg's default key)", implies: 'sign' },
} as const

/** Manifest options, each checked against the appc rules before any Nix work. */
const manifestOptions = {
  exec: { type: 'string', describe: "the app's full command line (default: <binary>); args after -- are appended" },
  'image-version': { type: 'string', describe: 'the version label' },
  label: { type: 'string', array: true, describe: 'a label, k=v (repeatable)' },
  env: { type: 'string', array: true, describe: 'an environment variable, K=V (repeatable)' },
  port: { type: 'string', array: true, describe: 'a port, name:protocol:port[:count][:socket-activated]' },
  mount: { type: 'string', array: true, describe: 'a mount point for the user to fill, name:path[:ro]' },
  volume: { type: 'string', array: true, describe: 'a host path for a --mount, name=hostpath (goes to .mounts)' },
  isolator: { type: 'string', array: true, describe: 'an isolator, name=JSON' },
  user: { type: 'string', describe: 'user to run as (default 0)' },
  group: { type: 'string', describe: 'group to run as (default 0)' },
  'supplementary-gid': { type: 'number', array: true, describe: 'a supplementary group ID (repeatable)' },
  'working-dir': { type: 'string', describe: "the app's working directory (absolute)" },
  annotation: { type: 'string', array: true, describe: 'an annotation, k=v (repeatable)' },
  'pre-start': { type: 'string', describe: 'command to run before the app starts' },
  'post-stop': { type: 'string', describe: 'command to run after the app stops' },
} as const

/** `command` is the command's name: `thin` or `fat` in nix2aci, `$0` (the default) in the legacy scripts. */
export function addImageCommand(
  cli: GlobalArgs,
  kind: ImageKind,
  signal: AbortSignal,
  command: string = kind,
): GlobalArgs {
  return cli.command(
    `${command} <name> <binary> <packages..>`,
    kind === 'thin'
      ? 'Build a thin ACI: the closure is mounted read-only from the host Nix store'
      : 'Build a fat ACI: the whole closure inside the image',
    (y) =>
      y
        .positional('name', { type: 'string', demandOption: true, describe: 'image name (an appc AC Identifier)' })
        .positional('binary', {
          type: 'string',
          demandOption: true,
          describe: 'program to run: bin/<binary>, sbin/<binary> or a path in the profile',
        })
        .positional('packages', {
          type: 'string',
          array: true,
          demandOption: true,
          describe: 'attribute paths, package names or store paths',
        })
        .options(imageOptions)
        .options(manifestOptions)
        .group(Object.keys(manifestOptions), 'Manifest options:'),
    async (argv) => {
      const app = parseAppOptions({
        ...argv,
        execArgs: ((argv['--'] as unknown[] | undefined) ?? []).map(String),
      })
      const result = await buildImage(
        {
          kind,
          name: argv.name,
          binary: argv.binary,
          packages: argv.packages,
          outDir: argv.outDir,
          file: argv.file,
          engine: argv.engine,
          compression: argv.compression,
          resolvConf: argv.resolvConf,
          validate: argv.validate,
          app,
          ...(argv.sign ? { sign: argv.key ? { key: argv.key } : {} } : {}),
        },
        createProgress(progressStyle({ quiet: argv.quiet || argv.json, verbose: argv.verbose }), undefined, {
          verbose: argv.verbose,
        }),
        signal,
      )
      process.stdout.write(argv.json ? `${JSON.stringify(result)}\n` : argv.quiet ? '' : `${describeBuild(result)}\n`)
    },
  )
}
