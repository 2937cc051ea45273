// `nix2aci export`, `import`, `copy` and `unit`: thin images to other hosts by Nix's own transport,
// and images run as systemd services.
import { findOnPath } from '../../util/exec.js'
import { displayPath } from '../../util/paths.js'
import type { GlobalArgs } from '../main.js'
import { formatSize } from '../report.js'
import { withImageArgument } from './image-argument.js'

export function addTravelCommands(cli: GlobalArgs, signal: AbortSignal): GlobalArgs {
  return cli
    .command(
      'export <aci>',
      'Write one file holding a thin image, its .mounts and its closure (nix-store --export), for nix2aci import on another host',
      (y) =>
        withImageArgument(y).option('output', {
          alias: 'o',
          type: 'string',
          demandOption: true,
          describe: 'the file to write (-: standard output, for a pipe into nix2aci import -)',
        }),
      async (argv) => {
        const { exportImage } = await import('../../pipeline/travel.js')
        const result = await exportImage(argv.aci, argv.output, signal)
        // The stream itself may be on stdout: the report then goes to stderr.
        const report = argv.output === '-' ? process.stderr : process.stdout
        if (argv.json) return void report.write(`${JSON.stringify(result)}\n`)
        if (!argv.quiet)
          report.write(
            result.size === undefined
              ? `exported ${result.name} to the standard output (${result.paths} store paths)\n`
              : `exported ${result.name} to ${displayPath(result.file)} (${result.paths} store paths, ${formatSize(result.size)})\n`,
          )
      },
    )
    .command(
      'import <file>',
      'Import a file nix2aci export wrote: its closure into the store, the image, .mounts and GC root profile into --out-dir',
      (y) =>
        y.positional('file', { type: 'string', demandOption: true, describe: 'the export file (-: standard input)' }),
      async (argv) => {
        const { importImage } = await import('../../pipeline/travel.js')
        // yargs hands a positional `-` on as '' (it re-parses it as the value of --file): '' is no file name.
        const file = argv.file === '' ? '-' : argv.file
        const result = await importImage(
          file,
          argv.outDir,
          (waiting) => {
            if (!argv.quiet)
              process.stderr.write(`Waiting for the other build of this image in ${displayPath(argv.outDir)}\n`)
            return waiting
          },
          signal,
        )
        if (argv.json) return void process.stdout.write(`${JSON.stringify(result)}\n`)
        if (!argv.quiet)
          process.stdout.write(
            `imported ${result.name}: ${displayPath(result.image)} (${result.paths} store paths, rooted by ${displayPath(result.profile)})\n`,
          )
      },
    )
    .command(
      'copy <aci>',
      'Copy a thin image to another host over SSH (NIX_SSHOPTS for every step): its closure with nix-copy-closure, its profile, then .mounts and the image',
      (y) =>
        withImageArgument(y)
          .option('to', {
            type: 'string',
            demandOption: true,
            describe: "ssh://[user@]host[/dir] (dir: default the image's own directory)",
          })
          .option('dry-run', { type: 'boolean', default: false, describe: 'print the commands instead' }),
      async (argv) => {
        const { copyCommandLine, copyCommands, parseSshTarget, runCopyCommands } =
          await import('../../pipeline/travel.js')
        parseSshTarget(argv.to, argv.aci) // a bad target is refused before anything else is read
        const commands = await copyCommands(argv.aci, argv.to, signal)
        if (argv.dryRun)
          return void process.stdout.write(commands.map((command) => `${copyCommandLine(command)}\n`).join(''))
        await runCopyCommands(commands, signal)
        if (!argv.quiet) process.stdout.write(`copied ${displayPath(argv.aci)} to ${argv.to}\n`)
      },
    )
    .command(
      'unit <aci>',
      'Print a systemd service unit that runs the image with rkt, with the volumes of its .mounts',
      (y) =>
        withImageArgument(y)
          .option('name', { type: 'string', describe: "the service's name (default: the last part of the image name)" })
          .option('rkt', {
            type: 'string',
            describe: 'the absolute path of rkt on the host that runs the service',
            defaultDescription: 'rkt on PATH, else /usr/bin/rkt',
          }),
      async (argv) => {
        const { serviceUnit } = await import('../../aci/unit.js')
        const rkt = argv.rkt ?? findOnPath('rkt') ?? '/usr/bin/rkt'
        process.stdout.write(await serviceUnit(argv.aci, { name: argv.name, rkt }, signal))
      },
    )
}
