// `nix2aci run`: rkt run with the image's own volumes and the user's rkt options.
import { spawn } from 'node:child_process'
import { exists } from '../../aci/files.js'
import { parseRunWords, rktRun } from '../../aci/rkt.js'
import { killOnAbort } from '../../util/cancel.js'
import { UserError } from '../../util/errors.js'
import { findOnPath } from '../../util/exec.js'
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
      const { args, volumes } = await rktRun(request)
      if (argv.dryRun) return void process.stdout.write(`${shellQuote(['rkt', ...args])}\n`)
      const rkt = findOnPath('rkt')
      if (!rkt)
        throw new UserError('rkt is not installed (not on PATH); --dry-run prints the command line it would run')
      const present = await Promise.all(volumes.map((volume) => exists(volume.source)))
      const missing = volumes.filter((_, i) => !present[i]).map((volume) => volume.source)
      if (missing.length > 0)
        throw new UserError(
          `cannot run ${request.image}: ${missing.length} mount sources missing on this host: ${missing.slice(0, 3).join(' ')}${missing.length > 3 ? ' ...' : ''} (nix2aci validate lists them)`,
        )
      process.exitCode = await new Promise<number>((resolve, reject) => {
        // An interrupt of nix2aci stops rkt, and its pod, and nix2aci exits once rkt has.
        const child = killOnAbort(spawn(rkt, args, { stdio: 'inherit', signal }), signal)
        child.on('error', (error) => {
          if (error.name !== 'AbortError') reject(error)
        })
        child.on('close', (code) => resolve(code ?? 1))
      })
    },
  )
}
