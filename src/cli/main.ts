// The command line: parses, runs one command, reports. All the work is in build/, nix/, plan/, engines/.
import { readFileSync } from 'node:fs'
import yargs, { type Argv, type InferredOptionTypes } from 'yargs'
import { COMPRESSIONS, type Compression } from '../aci/compression.js'
import { buildImage } from '../build/build-image.js'
import { ENGINES, type EngineChoice } from '../engines/engine.js'
import type { ImageKind } from '../plan/plan.js'
import { cleanUpOnSignals } from '../util/cleanup.js'
import { UserError, messageOf } from '../util/errors.js'
import { createProgress, progressStyle } from './progress.js'
import { describeBuild } from './report.js'

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string })
  .version

const imageOptions = {
  file: { alias: 'f', type: 'string', describe: 'Nix expression to take packages from (default <nixpkgs> from NIX_PATH)' },
  engine: { choices: ENGINES, default: 'auto' as EngineChoice, describe: 'acbuild, the native writer, or acbuild when installed' },
  compression: { choices: COMPRESSIONS, default: 'gzip' as Compression, describe: 'how the image is compressed' },
  'resolv-conf': { type: 'boolean', default: true, describe: "mount the host's /etc/resolv.conf (--no-resolv-conf drops it)" },
  validate: { type: 'boolean', default: true, describe: 'run actool validate when installed (--no-validate skips)' },
} as const

const globalOptions = {
  'out-dir': {
    type: 'string',
    default: process.env.OUTPUTDIR || `${process.cwd()}/ACIs`,
    defaultDescription: '$OUTPUTDIR or $PWD/ACIs',
    describe: 'where images are written',
  },
  json: { type: 'boolean', default: false, describe: 'print the result as one JSON object on stdout' },
  quiet: { alias: 'q', type: 'boolean', default: false, describe: 'print nothing but errors' },
  verbose: { alias: 'v', type: 'boolean', default: false, describe: 'print details of failures' },
} as const

type GlobalArgs = Argv<InferredOptionTypes<typeof globalOptions>>

function addImageCommand(cli: GlobalArgs, kind: ImageKind): GlobalArgs {
  return cli.command(
    `${kind} <name> <binary> <packages..>`,
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
        .options(imageOptions),
    async (argv) => {
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
        },
        createProgress(progressStyle({ quiet: argv.quiet || argv.json })),
      )
      process.stdout.write(argv.json ? `${JSON.stringify(result)}\n` : argv.quiet ? '' : `${describeBuild(result)}\n`)
    },
  )
}

export async function main(args: string[], scriptName = 'nix2aci'): Promise<void> {
  cleanUpOnSignals()
  const verbose = args.includes('--verbose') || args.includes('-v')
  try {
    const cli: GlobalArgs = yargs(args)
      .scriptName(scriptName)
      .usage('$0 <command> [options]\n\nTurn Nix packages into App Container Images (ACIs) for rkt.')
      .options(globalOptions)
    await addImageCommand(addImageCommand(cli, 'thin'), 'fat')
      .demandCommand(1, 'Name a command: thin or fat')
      .strict()
      .version(version)
      .help()
      .showHelpOnFail(false, `Run ${scriptName} --help for usage`)
      .fail((message, error) => {
        if (error) throw error
        throw new UserError(message)
      })
      .parseAsync()
  } catch (error) {
    if (error instanceof UserError) {
      process.stderr.write(`${scriptName}: ${error.message}\n`)
      process.exitCode = error.exitCode
    } else {
      process.stderr.write(`${scriptName}: unexpected failure: ${messageOf(error)}\n`)
      if (verbose && error instanceof Error) process.stderr.write(`${error.stack}\n`)
      process.exitCode = 70
    }
  }
}

/**
 * The original scripts' command lines, kept verbatim: `buildThinACI name binary-name package1
 * [package2 ...]`; with fewer than three arguments they print their usage and exit 1.
 */
export async function legacyMain(kind: ImageKind, scriptName: string, args: string[]): Promise<void> {
  if (args.filter((arg) => !arg.startsWith('-')).length < 3) {
    process.stderr.write(`Usage: ${scriptName} name binary-name package1 [package2 ...]\n`)
    process.exitCode = 1
    return
  }
  await main([kind, ...args], scriptName)
}
