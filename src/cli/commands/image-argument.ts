import type { Argv } from 'yargs'

/** The `<aci>` argument of inspect. */
export function withImageArgument<T>(y: Argv<T>) {
  return y.positional('aci', { type: 'string', demandOption: true, describe: 'the .aci file' })
}

/** The `<aci..>` argument of validate, which takes several images. */
export function withImagesArgument<T>(y: Argv<T>) {
  return y.positional('aci', { type: 'string', array: true, demandOption: true, describe: 'the .aci files' })
}
