// `nix2aci inspect` and `nix2aci validate`: what an image holds, and whether rkt could run it here.
import { layersFolderOf } from '../../plan/layers.js'
import { displayPath } from '../../util/paths.js'
import type { GlobalArgs } from '../main.js'
import { formatSize } from '../report.js'
import { withImageArgument, withImagesArgument } from './image-argument.js'

export function addInspectCommands(cli: GlobalArgs, signal: AbortSignal): GlobalArgs {
  return cli
    .command(
      'inspect <aci>',
      "Show what an image holds: name, labels, exec, mounts, ports, size, compression, image ID, and a layered image's layers",
      withImageArgument,
      async (argv) => {
        // Loaded here, not at start-up: reading images pulls in tar-stream, zlib and crypto.
        const [{ readImage }, { summariseLayers }] = await Promise.all([
          import('../../aci/inspect.js'),
          import('../../aci/layers.js'),
        ])
        const contents = await readImage(argv.aci, signal)
        const { manifest } = contents
        const mountPoints = manifest.app?.mountPoints ?? []
        const summary = {
          image: argv.aci,
          name: manifest.name,
          kind: contents.kind,
          labels: Object.fromEntries((manifest.labels ?? []).map((label) => [label.name, label.value])),
          exec: manifest.app?.exec ?? [],
          mounts: mountPoints,
          ports: manifest.app?.ports ?? [],
          size: contents.size,
          compression: contents.compression,
          imageId: contents.imageId,
          ...(contents.kind === 'layered' ? { layers: await summariseLayers(argv.aci, manifest) } : {}),
        }
        if (argv.json) return void process.stdout.write(`${JSON.stringify(summary)}\n`)
        const lines = [
          displayPath(argv.aci),
          `  name:        ${summary.name}`,
          `  kind:        ${summary.kind}`,
          `  labels:      ${Object.entries(summary.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')}`,
          `  exec:        ${summary.exec.join(' ')}`,
          `  mounts:      ${mountPoints.length}`,
          ...mountPoints.map((m) => `    ${m.name} -> ${m.path}${m.readOnly ? ' (read-only)' : ''}`),
          `  ports:       ${summary.ports.map((p) => `${p.name} ${p.protocol}/${p.port}`).join(', ') || 'none'}`,
          `  size:        ${formatSize(summary.size)} (${summary.compression})`,
          `  image ID:    ${summary.imageId}`,
          ...(summary.layers ? [`  layers:      ${summary.layers.length}`] : []),
          ...(summary.layers ?? []).flatMap((layer) => [
            `    ${displayPath(layer.file)}: ${layer.size === null ? 'missing' : formatSize(layer.size)}, ${
              layer.sharedWith.length > 0 ? `shared with ${layer.sharedWith.map(displayPath).join(', ')}` : 'not shared'
            }`,
            ...layer.storePaths.map((path) => `      ${path}`),
          ]),
        ]
        process.stdout.write(`${lines.join('\n')}\n`)
      },
    )
    .command(
      'validate <aci..>',
      "Check images as rkt would take them: actool, a volume for every mount point, the signature, that every mount source exists on this host, and a layered image's layers (each there with its pinned image ID, exec resolving)",
      withImagesArgument,
      async (argv) => {
        const { checkImage, MISSING_SOURCES } = await import('../../aci/check.js')
        const reports = await Promise.all(argv.aci.map((image) => checkImage(image, signal)))
        for (const report of reports) {
          if (argv.json) {
            process.stdout.write(`${JSON.stringify(report)}\n`)
            continue
          }
          const shown = displayPath(report.image)
          const checked = [
            `actool ${report.actool}`,
            ...(report.signature !== 'none' ? [`signature ${report.signature}`] : []),
          ]
          const warnings = report.warnings.map((w) => `  warning: ${w}`)
          const missing = report.missingMountSources.map((path) => `  missing: ${path}`)
          const others = report.problems.filter((p) => !p.startsWith(MISSING_SOURCES)).map((p) => `  ${p}`)
          const head = report.valid ? `${shown}: valid (${checked.join(', ')})` : `${shown}: invalid`
          process.stdout.write([head, ...others, ...missing, ...warnings].join('\n') + '\n')
        }
        if (reports.some((report) => !report.valid)) process.exitCode = 1
      },
    )
}

export function addPruneCommand(cli: GlobalArgs, signal: AbortSignal): GlobalArgs {
  return cli.command(
    'prune',
    'Remove the layers (<out-dir>/layers) that no image of the out-dir depends on',
    (y) => y,
    async (argv) => {
      const { pruneUnusedLayers } = await import('../../pipeline/outputs.js')
      const result = await pruneUnusedLayers(
        argv.outDir,
        (waiting) => {
          if (!argv.quiet)
            process.stderr.write(
              `Waiting for another nix2aci to finish with ${displayPath(layersFolderOf(argv.outDir))}\n`,
            )
          return waiting
        },
        signal,
      )
      if (argv.json) return void process.stdout.write(`${JSON.stringify(result)}\n`)
      if (!argv.quiet)
        process.stdout.write(
          `Removed ${result.removed.length} unused layers (${formatSize(result.bytes)}) from ${displayPath(argv.outDir)}\n`,
        )
    },
  )
}
