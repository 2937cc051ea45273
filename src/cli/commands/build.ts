// `nix2aci build`: every image a spec file declares; a failing image fails alone.
import { buildMany } from '../../pipeline/build-many.js'
import { BUILD_OPTIONS, NIX_OPTION_NAMES, nixOptionsOf } from '../../pipeline/options.js'
import { loadSpec } from '../../pipeline/spec.js'
import { displayPath } from '../../util/paths.js'
import type { GlobalArgs } from '../main.js'
import { createProgress, progressStyle } from '../progress.js'
import { formatSize } from '../report.js'
import { yargsOptions } from './image.js'

/** The Nix options, for the evaluation of a Nix spec and as defaults for every image. */
const NIX_OPTIONS = Object.fromEntries(NIX_OPTION_NAMES.map((name) => [name, BUILD_OPTIONS[name]])) as Pick<
  typeof BUILD_OPTIONS,
  (typeof NIX_OPTION_NAMES)[number]
>

export function addBuildCommand(cli: GlobalArgs, signal: AbortSignal): GlobalArgs {
  return cli.command(
    'build [spec]',
    'Build every image a spec file (JSON, or Nix: images.nix) declares (see README: "Building from a spec")',
    (y) =>
      y
        .positional('spec', {
          alias: ['config', 'c'],
          type: 'string',
          default: 'nix2aci.json',
          describe: 'the spec file: JSON, or Nix when it ends in .nix',
        })
        .option('file', { alias: 'f', type: 'string', describe: 'default Nix expression for images that name none' })
        .options(yargsOptions(NIX_OPTIONS)),
    async (argv) => {
      const defaults = {
        outDir: argv.outDir,
        ...(argv.file ? { file: argv.file } : {}),
        nixOptions: nixOptionsOf(argv),
      }
      const entries = await loadSpec(argv.spec, defaults, signal)
      const style = progressStyle({ quiet: argv.quiet || argv.json, verbose: argv.verbose })
      const outcomes = await buildMany(
        entries,
        (name) => createProgress(style, name, { verbose: argv.verbose }),
        signal,
      )
      const failed = outcomes.filter((outcome) => !outcome.ok).length
      // Each failure is an error: on stderr whatever else is asked for, also under --quiet and --json.
      for (const outcome of outcomes) {
        if (!outcome.ok) {
          process.stderr.write(`FAILED ${outcome.name}: ${outcome.error}\n`)
          for (const detail of outcome.details ?? []) process.stderr.write(`  ${detail}\n`)
        }
        if (!outcome.ok || argv.quiet) continue
        const { image, kind, size, warnings } = outcome.result
        for (const warning of warnings) process.stderr.write(`warning ${outcome.name}: ${warning}\n`)
        if (!argv.json)
          process.stdout.write(`ok     ${outcome.name}: ${displayPath(image)} (${kind}, ${formatSize(size)})\n`)
      }
      if (argv.json) {
        process.stdout.write(`${JSON.stringify({ images: outcomes, built: outcomes.length - failed, failed })}\n`)
      } else if (!argv.quiet) {
        process.stdout.write(`${outcomes.length - failed} built, ${failed} failed\n`)
      }
      if (failed > 0) process.exitCode = 1
    },
  )
}
