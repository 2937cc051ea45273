// `nix2aci thin` and `nix2aci fat`: options in, one build, a report out.
import type { Options } from 'yargs'
import { buildImage } from '../../pipeline/build-image.js'
import { BUILD_OPTIONS, IMAGE_OPTIONS, LAYER_OPTIONS, layerOptionsOf, packageInputsOf } from '../../pipeline/options.js'
import { MANIFEST_OPTIONS, parseAppOptions } from '../../plan/app-options.js'
import { unmetNeed, type OptionTable } from '../../plan/options.js'
import type { ImageKind } from '../../plan/plan.js'
import { UserError } from '../../util/errors.js'
import type { GlobalArgs } from '../main.js'
import { createProgress, progressStyle } from '../progress.js'
import { describeBuild } from '../report.js'

/** A table's options as yargs takes them; repeatable ones are text, which their parsers check. */
type YargsOptions<Table extends OptionTable> = {
  [Option in keyof Table]: { describe: string } & (Table[Option] extends { type: 'boolean' }
    ? { type: 'boolean'; default: boolean }
    : Table[Option] extends { choices: readonly (infer Choice)[] }
      ? { choices: readonly Choice[]; default: Choice }
      : Table[Option] extends { type: 'strings' | 'numbers' }
        ? { type: 'string'; array: true }
        : Table[Option] extends { type: 'number' }
          ? { type: 'string' }
          : Table[Option] extends { type: 'pairs' }
            ? { type: 'string'; array: true; nargs: 2 }
            : { type: 'string' })
}

export function yargsOptions<Table extends OptionTable>(table: Table): YargsOptions<Table> {
  const options = Object.entries(table).map(([option, declaration]): [string, Options] => {
    const common = { describe: declaration.describe, ...(declaration.alias ? { alias: declaration.alias } : {}) }
    switch (declaration.type) {
      case 'string':
      case 'number':
        return [option, { ...common, type: 'string' }]
      case 'strings':
      case 'numbers':
        return [option, { ...common, type: 'string', array: true }]
      case 'pairs':
        return [option, { ...common, type: 'string', array: true, nargs: 2 }]
      case 'boolean':
        return [option, { ...common, type: 'boolean', default: declaration.default }]
      case 'choice':
        return [option, { ...common, choices: declaration.choices, default: declaration.default }]
    }
  })
  return Object.fromEntries(options) as YargsOptions<Table>
}

/** `command` is the command's name: `thin` or `fat` in nix2aci, `$0` (the default) in the legacy scripts. */
export function addImageCommand(
  cli: GlobalArgs,
  kind: ImageKind,
  signal: AbortSignal,
  command: string = kind,
): GlobalArgs {
  // With -A or -E there may be no positional package; the original scripts' line demands one.
  const packages = command === '$0' ? '<packages..>' : '[packages..]'
  return cli.command(
    `${command} <name> <binary> ${packages}`,
    {
      thin: 'Build a thin ACI: the closure is mounted read-only from the host Nix store',
      fat: 'Build a fat ACI: the whole closure inside the image',
      layered:
        'Build a layered ACI: the closure in layer images shared by every image of the out-dir (<out-dir>/layers)',
    }[kind],
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
          describe: 'attribute paths, package names, store paths, .drv files, out-links (./result), flakes (.#hello)',
        })
        .options(yargsOptions(BUILD_OPTIONS))
        // Declared for every kind, so that argv's type has them; only layered lists and takes them.
        .options(
          kind === 'layered'
            ? yargsOptions(LAYER_OPTIONS)
            : ({} as ReturnType<typeof yargsOptions<typeof LAYER_OPTIONS>>),
        )
        .options(yargsOptions(MANIFEST_OPTIONS))
        .group(Object.keys(MANIFEST_OPTIONS), 'Manifest options:'),
    async (argv) => {
      const unmet = unmetNeed(IMAGE_OPTIONS, argv)
      if (unmet) throw new UserError(`--${unmet[0]} needs --${unmet[1]}`)
      const layers = kind === 'layered' ? layerOptionsOf(argv) : undefined
      const app = parseAppOptions({
        ...argv,
        execArgs: ((argv['--'] as unknown[] | undefined) ?? []).map(String),
      })
      const result = await buildImage(
        {
          kind,
          name: argv.name,
          binary: argv.binary,
          ...packageInputsOf(argv.packages ?? [], argv),
          packages: argv.packages ?? [],
          outDir: argv.outDir,
          file: argv.file,
          engine: argv.engine,
          compression: argv.compression,
          resolvConf: argv.resolvConf,
          validate: argv.validate,
          app,
          ...(argv.sign ? { sign: argv.key ? { key: argv.key } : {} } : {}),
          ...(layers ? { layers } : {}),
        },
        createProgress(progressStyle({ quiet: argv.quiet || argv.json, verbose: argv.verbose }), undefined, {
          verbose: argv.verbose,
        }),
        signal,
      )
      if (!argv.quiet) for (const warning of result.warnings) process.stderr.write(`warning: ${warning}\n`)
      process.stdout.write(argv.json ? `${JSON.stringify(result)}\n` : argv.quiet ? '' : `${describeBuild(result)}\n`)
    },
  )
}
