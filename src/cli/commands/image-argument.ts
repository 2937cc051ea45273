import type { Argv } from 'yargs'

/** The `<aci>` argument of the commands that take an image: inspect, validate, run. */
export function withImageArgument<T>(y: Argv<T>) {
  return y.positional('aci', { type: 'string', demandOption: true, describe: 'the .aci file' })
}
