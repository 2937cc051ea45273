// `nix2aci publish`: images into a static appc discovery tree, for rkt fetch and actool discover by name.
import { displayPath } from '../../util/paths.js'
import type { GlobalArgs } from '../main.js'
import { withImagesArgument } from './image-argument.js'

export function addPublishCommand(cli: GlobalArgs, signal: AbortSignal): GlobalArgs {
  return cli.command(
    'publish <aci..>',
    "Write images, their layers, signatures and the signer's key into a folder a static web server serves for appc discovery",
    (y) =>
      withImagesArgument(y)
        .option('to', { type: 'string', demandOption: true, describe: 'the folder served at --url-prefix' })
        .option('url-prefix', {
          type: 'string',
          demandOption: true,
          describe: 'http(s)://HOST/PATH the folder is served at; image names must start with HOST/PATH/',
        })
        .option('key', {
          type: 'string',
          describe: "the gpg key exported to pubkeys.gpg (default: the signers of the images' signatures)",
        }),
    async (argv) => {
      const { publish } = await import('../../pipeline/publish.js')
      const result = await publish(argv.aci, { to: argv.to, urlPrefix: argv.urlPrefix, key: argv.key }, signal)
      if (argv.json) return void process.stdout.write(`${JSON.stringify(result)}\n`)
      if (argv.quiet) return
      for (const image of result.images)
        process.stdout.write(`published ${image.name}:${image.version} at ${image.url}\n`)
      process.stdout.write(
        `${result.layers} layers; ${result.pubkeys ? `key ${displayPath(result.pubkeys)}; ` : ''}pages for ${result.prefix} in ${displayPath(argv.to)}\n`,
      )
    },
  )
}
