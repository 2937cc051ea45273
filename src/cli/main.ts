// The command line: parses, runs one command, reports. The work is in build/, nix/, plan/, engines/, aci/.
import yargs, { type Argv, type InferredOptionTypes } from 'yargs'
import packageJson from '../../package.json' with { type: 'json' }
import type { ImageKind } from '../plan/plan.js'
import { Interrupted, abortOnStopSignals } from '../util/cancel.js'
import { UsageError, UserError, messageOf } from '../util/errors.js'
import { addBuildCommand } from './commands/build.js'
import { addImageCommand } from './commands/image.js'
import { addInspectCommands } from './commands/inspect.js'
import { addRunCommand } from './commands/run.js'

const globalOptions = {
  'out-dir': {
    type: 'string',
    default: process.env.OUTPUTDIR || `${process.cwd()}/ACIs`,
    defaultDescription: '$OUTPUTDIR or $PWD/ACIs',
    describe: 'where images are written',
  },
  json: { type: 'boolean', default: false, describe: 'print the result as one JSON object on stdout' },
  quiet: { alias: 'q', type: 'boolean', default: false, describe: 'print nothing but errors' },
  verbose: {
    alias: 'v',
    type: 'boolean',
    default: false,
    describe: "show Nix's output as it comes, and details of failures",
  },
} as const

export type GlobalArgs = Argv<InferredOptionTypes<typeof globalOptions>>

/** `legacyUsage` replaces yargs' complaint about missing arguments, as the original scripts printed it. */
export async function main(args: string[], scriptName = 'nix2aci', legacyUsage?: string): Promise<void> {
  // One signal for the whole run: the command undoes its work before it settles, and only then do we exit.
  const stop = abortOnStopSignals()
  const { signal } = stop
  const verbose = args.includes('--verbose') || args.includes('-v')
  try {
    let cli: GlobalArgs = yargs(args)
      .scriptName(scriptName)
      .usage('$0 <command> [options]\n\nTurn Nix packages into App Container Images (ACIs) for rkt.')
      .options(globalOptions)
    skipHelpCaching(cli)
    cli = addImageCommand(cli, 'thin', signal)
    cli = addImageCommand(cli, 'fat', signal)
    cli = addInspectCommands(cli)
    cli = addRunCommand(cli, signal)
    cli = addBuildCommand(cli, signal)
    await cli
      .parserConfiguration({ 'populate--': true })
      .demandCommand(1, 'Name a command: thin, fat, build, inspect, validate or run')
      .strict()
      .version(packageJson.version)
      .help()
      .showHelpOnFail(false, `Run ${scriptName} --help for usage`)
      .fail((message, error) => {
        if (error) throw error
        if (legacyUsage && message.startsWith('Not enough non-option arguments')) throw new UsageError(legacyUsage)
        // yargs spreads some complaints over several lines; an error here is always one.
        throw new UserError(
          message
            .split('\n')
            .map((line) => line.trim())
            .join(' '),
        )
      })
      .parseAsync()
  } catch (error) {
    // Whatever error the stop surfaced as (a killed nix-env, an aborted stream), the interrupt is the news.
    if (signal.aborted) return
    if (error instanceof UserError) {
      process.stderr.write(error instanceof UsageError ? `${error.message}\n` : `${scriptName}: ${error.message}\n`)
      for (const line of error.details) process.stderr.write(`  ${line}\n`)
      process.exitCode = error.exitCode
    } else {
      process.stderr.write(`${scriptName}: unexpected failure: ${messageOf(error)}\n`)
      if (verbose && error instanceof Error) process.stderr.write(`${error.stack}\n`)
      process.exitCode = 70
    }
  } finally {
    stop.release()
    if (signal.reason instanceof Interrupted) {
      process.stderr.write(`${scriptName}: ${signal.reason.message}\n`)
      process.exit(signal.reason.exitCode)
    }
  }
}

/**
 * yargs renders a command's whole help text right after calling its handler, to show it should the
 * handler fail. Failures here are reported by .fail() as one line without help, so that text is
 * never shown; rendering it costs ~10 ms of CPU while nix-env runs, slowing nix-env by ~5 ms.
 * Reaches into yargs' internals, so it only acts where they are as in yargs 17.
 */
function skipHelpCaching(cli: Argv<unknown>): void {
  const internals = (cli as { getInternalMethods?: () => { getUsageInstance?: () => unknown } }).getInternalMethods
  const usage = internals?.call(cli).getUsageInstance?.() as { cacheHelpMessage?: () => void } | undefined
  if (typeof usage?.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => {}
}

/**
 * The original scripts' command lines, kept verbatim: `buildThinACI name binary-name package1
 * [package2 ...]`; with fewer than three arguments they print their usage and exit 1.
 */
export async function legacyMain(kind: ImageKind, scriptName: string, args: string[]): Promise<void> {
  await main([kind, ...args], scriptName, `Usage: ${scriptName} name binary-name package1 [package2 ...]`)
}
