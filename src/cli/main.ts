// The command line: parses, runs one command, reports. The work is in pipeline/, nix/, plan/, engines/, aci/.
import yargs, { type Argv, type InferredOptionTypes } from 'yargs'
import packageJson from '../../package.json' with { type: 'json' }
import type { ImageKind } from '../plan/plan.js'
import { Interrupted, abortOnStopSignals } from '../util/cancel.js'
import { editDistance } from '../util/edit-distance.js'
import { UsageError, UserError, messageOf } from '../util/errors.js'
import { addBuildCommand } from './commands/build.js'
import { addImageCommand } from './commands/image.js'
import { addInspectCommands, addPruneCommand } from './commands/inspect.js'
import { addPublishCommand } from './commands/publish.js'
import { addRunCommand } from './commands/run.js'
import { addTravelCommands } from './commands/travel.js'

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

/** nix2aci's commands, for its usage error and its "did you mean". */
const COMMANDS = [
  'thin',
  'fat',
  'layered',
  'build',
  'inspect',
  'validate',
  'run',
  'prune',
  'export',
  'import',
  'copy',
  'unit',
  'publish',
] as const

/** What a program's command line is made of; nix2aci and each legacy script have one. */
interface CommandLine {
  scriptName: string
  /** The words a mistyped command is compared with. */
  commands: readonly string[]
  /** `signal` stops the command: it undoes its work before it settles. */
  addCommands: (cli: GlobalArgs, signal: AbortSignal) => GlobalArgs
  /** Replaces yargs' complaint about missing arguments, as the original scripts printed it. */
  legacyUsage?: string
}

const NIX2ACI: CommandLine = {
  scriptName: 'nix2aci',
  commands: [...COMMANDS, 'help', 'completion'],
  addCommands: (cli, signal) => {
    cli = cli.usage(
      '$0 <command> [options]\n\nTurn Nix packages into App Container Images (ACIs) for rkt.\n' +
        '`$0 help <command>` shows the options of a command.',
    )
    cli = addImageCommand(cli, 'thin', signal)
    cli = addImageCommand(cli, 'fat', signal)
    cli = addImageCommand(cli, 'layered', signal)
    cli = addInspectCommands(cli, signal)
    cli = addRunCommand(cli, signal)
    cli = addPruneCommand(cli, signal)
    cli = addBuildCommand(cli, signal)
    cli = addTravelCommands(cli, signal)
    cli = addPublishCommand(cli, signal)
    return cli
      .demandCommand(1, `Name a command: ${COMMANDS.slice(0, -1).join(', ')} or ${COMMANDS.at(-1)}`)
      .completion('completion', 'Print a bash or zsh completion script: nix2aci completion >> ~/.bashrc')
  },
}

export async function main(args: string[]): Promise<void> {
  await parseAndRun(NIX2ACI, helpAsOption(args))
}

/**
 * The original scripts' command lines, kept verbatim: `buildThinACI name binary-name package1
 * [package2 ...]`; with fewer than three arguments they print their usage and exit 1.
 */
export async function legacyMain(kind: ImageKind, scriptName: string, args: string[]): Promise<void> {
  const usage = `Usage: ${scriptName} name binary-name package1 [package2 ...]`
  const about = `The original script's command line for \`nix2aci ${kind}\`: the same build, the same options.`
  await parseAndRun(
    {
      scriptName,
      commands: [],
      addCommands: (cli, signal) => addImageCommand(cli.usage(`${usage}\n\n${about}`), kind, signal, '$0'),
      legacyUsage: usage,
    },
    args,
  )
}

/** Runs the command `args` name. Every error is one line on stderr, with the exit code it carries. */
async function parseAndRun(line: CommandLine, args: string[]): Promise<void> {
  // One signal for the whole run: the command undoes its work before it settles, and only then do we exit.
  const stop = abortOnStopSignals()
  const { signal } = stop
  const verbose = args.includes('--verbose') || args.includes('-v')
  try {
    await createParser(line, args, signal).parseAsync()
  } catch (error) {
    // Whatever error the stop surfaced as (a killed nix-env, an aborted stream), the interrupt is the news.
    if (signal.aborted) return
    if (error instanceof UserError) {
      process.stderr.write(
        error instanceof UsageError ? `${error.message}\n` : `${line.scriptName}: ${error.message}\n`,
      )
      for (const detail of error.details) process.stderr.write(`  ${detail}\n`)
      process.exitCode = error.exitCode
    } else {
      process.stderr.write(`${line.scriptName}: unexpected failure: ${messageOf(error)}\n`)
      if (verbose && error instanceof Error) process.stderr.write(`${error.stack}\n`)
      process.exitCode = 70
    }
  } finally {
    // The handlers stay installed up to the exit: a signal in between would kill us with its default action.
    if (signal.reason instanceof Interrupted) {
      process.stderr.write(`${line.scriptName}: ${signal.reason.message}\n`)
      process.exit(signal.reason.exitCode)
    }
    stop.release()
  }
}

/** nix2aci's parser for `args`, ready to parse: for the test that help is not rendered needlessly. */
export function createNix2aciParser(args: string[], signal: AbortSignal): GlobalArgs {
  return createParser(NIX2ACI, helpAsOption(args), signal)
}

function createParser(line: CommandLine, args: string[], signal: AbortSignal): GlobalArgs {
  const { scriptName, legacyUsage } = line
  const cli: GlobalArgs = yargs(args).scriptName(scriptName).options(globalOptions)
  skipHelpCaching(cli)
  return line
    .addCommands(cli, signal)
    .parserConfiguration({ 'populate--': true })
    .strict()
    .version(packageJson.version)
    .help()
    .alias('help', 'h')
    .showHelpOnFail(false, `Run ${scriptName} --help for usage`)
    .fail((message, error) => {
      if (error) throw error
      if (legacyUsage && message.startsWith('Not enough non-option arguments')) throw new UsageError(legacyUsage)
      // yargs spreads some complaints over several lines; an error here is always one.
      const oneLine = message
        .split('\n')
        .map((text) => text.trim())
        .join(' ')
      throw new UserError(withSuggestions(oneLine, args, line.commands, optionNames(cli)))
    })
}

/** `nix2aci help [command]` is `nix2aci [command] --help`; an unknown command gets the usual error. */
function helpAsOption(args: string[]): string[] {
  if (args[0] !== 'help') return args
  const [, command, ...rest] = args
  if (command === undefined) return ['--help']
  return (COMMANDS as readonly string[]).includes(command) ? [command, '--help'] : [command, ...rest]
}

/**
 * yargs' "Unknown argument(s): a, b", with a guess for a word that is near a name nix2aci knows: an
 * unknown command (the words after it are not worth listing) or an option given with dashes.
 */
function withSuggestions(
  message: string,
  args: readonly string[],
  commands: readonly string[],
  options: readonly string[],
): string {
  const unknown = /^Unknown arguments?: (.*)$/.exec(message)?.[1]?.split(', ')
  if (!unknown) return message
  const guess = (word: string, candidates: readonly string[], prefix = '') => {
    const closest = closestWord(word, candidates)
    return closest ? `${word} (did you mean ${prefix}${closest}?)` : word
  }
  const firstWord = args.find((arg) => !arg.startsWith('-'))
  if (commands.length > 0 && unknown[0] === firstWord) return `Unknown argument: ${guess(firstWord, commands)}`
  // yargs names an unknown option twice, as given and camel-cased: `out-dri, outDri`.
  const given = unknown.filter((name) => !unknown.some((other) => other !== name && camelCase(other) === name))
  const described = given.map((name) =>
    args.some((arg) => arg.startsWith('-') && arg.replace(/^--?/, '').split('=')[0] === name)
      ? guess(name, options, '--')
      : name,
  )
  return `Unknown argument${described.length > 1 ? 's' : ''}: ${described.join(', ')}`
}

function camelCase(name: string): string {
  return name.replace(/-+(.)/g, (_, letter: string) => letter.toUpperCase())
}

/** The word of `candidates` nearest to `word`, if it is near enough to be what was meant. */
function closestWord(word: string, candidates: readonly string[]): string | undefined {
  const limit = Math.max(2, Math.floor(word.length / 3))
  const [best] = candidates
    .map((candidate) => ({ candidate, distance: editDistance(word, candidate) }))
    .filter((scored) => scored.distance <= limit)
    .sort((a, b) => a.distance - b.distance)
  return best?.candidate
}

/** The long option names yargs knows at the point of failure: the global ones and the command's. */
function optionNames(cli: Argv<unknown>): string[] {
  const options = (cli as { getOptions?: () => { key?: object; alias?: Record<string, string[]> } }).getOptions?.()
  const names = [...Object.keys(options?.key ?? {}), ...Object.values(options?.alias ?? {}).flat()]
  return names.filter((name) => name.length > 1 && name === name.toLowerCase())
}

/**
 * yargs renders a command's whole help text right after calling its handler, to show it should the
 * handler fail. Failures here are reported by .fail() as one line without help, so that text is
 * never shown; rendering it costs ~10 ms of CPU while nix-env runs, slowing nix-env by ~5 ms.
 * Reaches into yargs' internals, so it only acts where they are as in yargs 17
 * (test/unit/help-caching.test.ts fails if they move).
 */
function skipHelpCaching(cli: Argv<unknown>): void {
  const internals = (cli as { getInternalMethods?: () => { getUsageInstance?: () => unknown } }).getInternalMethods
  const usage = internals?.call(cli).getUsageInstance?.() as { cacheHelpMessage?: () => void } | undefined
  if (typeof usage?.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => {}
}
