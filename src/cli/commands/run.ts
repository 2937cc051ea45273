// `nix2aci run`: rkt run with the image's own mounts.
import { spawn } from 'node:child_process'
import { rktRunArgs } from '../../aci/rkt.js'
import { killOnAbort } from '../../util/cancel.js'
import { UserError } from '../../util/errors.js'
import { findOnPath } from '../../util/exec.js'
import { shellQuote } from '../../util/shell.js'
import type { GlobalArgs } from '../main.js'
import { withImageArgument } from './image-argument.js'

export function addRunCommand(cli: GlobalArgs, signal: AbortSignal): GlobalArgs {
  return cli.command(
    'run <aci>',
    'Run an image with rkt, with the volumes of its .mounts file (args after -- go to the app)',
    (y) =>
      withImageArgument(y).option('dry-run', {
        type: 'boolean',
        default: false,
        describe: 'print the rkt command line instead',
      }),
    async (argv) => {
      const args = await rktRunArgs(argv.aci, ((argv['--'] as unknown[] | undefined) ?? []).map(String))
      if (argv.dryRun) return void process.stdout.write(`${shellQuote(['rkt', ...args])}\n`)
      const rkt = findOnPath('rkt')
      if (!rkt)
        throw new UserError('rkt is not installed (not on PATH); --dry-run prints the command line it would run')
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
