// A systemd service unit that runs an image with rkt, as rkt's documentation runs pods under systemd
// (Documentation/using-rkt-with-systemd.md): rkt in the foreground as the service's main process,
// `KillMode=mixed` so that systemd stops rkt with SIGTERM and only then kills what is left, a restart
// policy, and the app's exec left to the manifest. This module owns the unit's text and systemd's quoting.
import { resolve } from 'node:path'
import { readManifest } from './inspect.js'
import { layerFilesOfImage } from './layers.js'
import { parseRunWords, rktRun } from './rkt.js'
import { UserError } from '../util/errors.js'

/** systemd's unit name characters (systemd.unit(5)), without the `.service` suffix. */
const SERVICE_NAME = /^[A-Za-z0-9:_.\\-]+$/

/** The default service name: the last part of the image's name (`example.com/etcd` -> `etcd`). */
function defaultServiceName(imageName: string): string {
  return imageName.split('/').at(-1)!
}

/**
 * The unit's text. `rkt` is the absolute path of rkt on the host that runs it (systemd runs no
 * PATH lookup for what is not in its own default directories).
 */
export async function serviceUnit(
  image: string,
  options: { name?: string; rkt: string },
  signal?: AbortSignal,
): Promise<string> {
  const file = resolve(image)
  const manifest = await readManifest(file, signal)
  const name = options.name ?? defaultServiceName(manifest.name)
  if (!SERVICE_NAME.test(name))
    throw new UserError(`not a systemd service name: '${name}' (letters, digits and :_.\\- only)`)
  if (!options.rkt.startsWith('/')) throw new UserError(`--rkt must be an absolute path: ${options.rkt}`)
  const { args, fetchLayers } = await rktRun(parseRunWords([file], []))
  // A layered image's layers go into rkt's store before the pod starts, from the files beside it, as
  // `nix2aci run` fetches them: rkt resolves the dependencies by image ID from there.
  const layers = layerFilesOfImage(file, manifest)
  const fetch = layers.length > 0 ? [execLine('ExecStartPre', [options.rkt, ...fetchLayers(layers)])] : []
  return [
    `# ${name}.service: save it as /etc/systemd/system/${name}.service, then: systemctl daemon-reload && systemctl start ${name}`,
    '[Unit]',
    `Description=${escapeSpecifiers(`${manifest.name} (nix2aci image ${file})`)}`,
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Slice=machine.slice',
    ...fetch,
    execLine('ExecStart', [options.rkt, ...args]),
    'KillMode=mixed',
    'Restart=always',
    'RestartSec=5',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n')
}

function execLine(key: string, [program, ...args]: readonly string[]): string {
  return `${key}=${[systemdQuote(program!, 'program'), ...args.map((arg) => systemdQuote(arg))].join(' ')}`
}

/**
 * One word as systemd.service(5) reads a command line back: `%` is a specifier and, in an argument
 * (not in the program's path), `$` a variable, unless doubled; a word with white space, quotes or
 * backslashes goes in double quotes, C-escaped.
 */
function systemdQuote(word: string, as: 'program' | 'argument' = 'argument'): string {
  const specifiersEscaped = escapeSpecifiers(word)
  const escaped = as === 'program' ? specifiersEscaped : specifiersEscaped.replaceAll('$', '$$$$')
  if (/^[^\s"'\\;]+$/.test(escaped)) return escaped
  return `"${escaped
    .replace(/[\\"]/g, (c) => `\\${c}`)
    .replace(/\n/g, '\\n')
    .replace(/\t/g, '\\t')}"`
}

function escapeSpecifiers(text: string): string {
  return text.replaceAll('%', '%%')
}
