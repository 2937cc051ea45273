// `nix2aci run`: rkt run with the image's own volumes and the user's rkt options (pipeline/run.ts runs it).
import { parseRunWords } from '../../aci/rkt.js'
import { prepareRun, startRun } from '../../pipeline/run.js'
import { shellQuote } from '../../util/shell.js'
import type { GlobalArgs } from '../main.js'

export function addRunCommand(cli: GlobalArgs, signal: AbortSignal): GlobalArgs {
  return cli.command(
    'run <aci..>',
    "Run an image with rkt, with the volumes of its .mounts file; rkt's options (--name=value) go to rkt unchanged, args after -- to the app",
    (y) =>
      y
        .positional('aci', {
          type: 'string',
          array: true,
          demandOption: true,
          describe: "the .aci file, with rkt's options before it (global and run options) or after it (per-app)",
        })
        .option('dry-run', { type: 'boolean', default: false, describe: 'print the rkt command line instead' })
        // Options nix2aci does not know stay in `aci`, in order, for rkt.
        .parserConfiguration({ 'populate--': true, 'unknown-options-as-args': true }),
    async (argv) => {
      const request = parseRunWords(argv.aci, ((argv['--'] as unknown[] | undefined) ?? []).map(String))
      const prepared = await prepareRun(request, signal)
      if (argv.dryRun) {
        const { fetch, args, fits } = prepared
        if (!fits) process.stderr.write('too long for a command line here: run passes the volumes in a pod manifest\n')
        if (fetch) process.stdout.write(`${shellQuote(['rkt', ...fetch])}\n`)
        return void process.stdout.write(`${shellQuote(['rkt', ...args])}\n`)
      }
      process.exitCode = await startRun(prepared, signal)
    },
  )
}
