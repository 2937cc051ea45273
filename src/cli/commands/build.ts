// `nix2aci build`: every image a spec file declares; a failing image fails alone.
import { readFile } from 'node:fs/promises'
import { buildMany } from '../../pipeline/build-many.js'
import { parseSpec } from '../../pipeline/spec.js'
import { UserError } from '../../util/errors.js'
import { displayPath } from '../../util/paths.js'
import type { GlobalArgs } from '../main.js'
import { createProgress, progressStyle } from '../progress.js'
import { formatSize } from '../report.js'

export function addBuildCommand(cli: GlobalArgs, signal: AbortSignal): GlobalArgs {
  return cli.command(
    'build',
    'Build every image a spec file declares (see README: "Building from a spec")',
    (y) =>
      y
        .option('config', { alias: 'c', type: 'string', default: 'nix2aci.json', describe: 'the spec file' })
        .option('file', { alias: 'f', type: 'string', describe: 'default Nix expression for images that name none' }),
    async (argv) => {
      const text = await readFile(argv.config, 'utf8').catch(() => {
        throw new UserError(`cannot read the spec file ${argv.config}`)
      })
      const entries = parseSpec(text, argv.config, { outDir: argv.outDir, ...(argv.file ? { file: argv.file } : {}) })
      const style = progressStyle({ quiet: argv.quiet || argv.json, verbose: argv.verbose })
      const outcomes = await buildMany(
        entries,
        (name) => createProgress(style, name, { verbose: argv.verbose }),
        signal,
      )
      const failed = outcomes.filter((outcome) => !outcome.ok).length
      // Each failure is an error: on stderr whatever else is asked for, also under --quiet and --json.
      for (const outcome of outcomes) {
        if (!outcome.ok) process.stderr.write(`FAILED ${outcome.name}: ${outcome.error}\n`)
        else if (!argv.quiet && !argv.json) {
          const { image, kind, size } = outcome.result
          process.stdout.write(`ok     ${outcome.name}: ${displayPath(image)} (${kind}, ${formatSize(size)})\n`)
        }
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
