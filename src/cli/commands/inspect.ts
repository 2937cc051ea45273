// `nix2aci inspect` and `nix2aci validate`: what an image holds, and whether rkt could run it here.
import { isStorePath } from '../../nix/selectors.js'
import { displayPath } from '../../util/paths.js'
import type { GlobalArgs } from '../main.js'
import { formatSize } from '../report.js'
import { withImageArgument } from './image-argument.js'

interface ManifestView {
  name?: string
  labels?: Array<{ name: string; value: string }>
  app?: {
    exec?: string[]
    mountPoints?: Array<{ name: string; path: string; readOnly?: boolean }>
    ports?: Array<{ name: string; protocol: string; port: number; count?: number }>
  }
}

export function addInspectCommands(cli: GlobalArgs): GlobalArgs {
  return cli
    .command(
      'inspect <aci>',
      'Show what an image holds: name, labels, exec, mounts, ports, size, compression, image ID',
      withImageArgument,
      async (argv) => {
        // Loaded here, not at start-up: reading images pulls in tar-stream, zlib and crypto.
        const { readImage } = await import('../../aci/inspect.js')
        const contents = await readImage(argv.aci)
        const manifest = contents.manifest as ManifestView
        const mountPoints = manifest.app?.mountPoints ?? []
        const summary = {
          image: argv.aci,
          name: manifest.name ?? null,
          kind: contents.hasStore ? 'fat' : mountPoints.some((m) => isStorePath(m.path)) ? 'thin' : 'other',
          labels: Object.fromEntries((manifest.labels ?? []).map((label) => [label.name, label.value])),
          exec: manifest.app?.exec ?? [],
          mounts: mountPoints,
          ports: manifest.app?.ports ?? [],
          size: contents.size,
          compression: contents.compression,
          imageId: contents.imageId,
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
        ]
        process.stdout.write(`${lines.join('\n')}\n`)
      },
    )
    .command(
      'validate <aci>',
      'Check an image: actool validate, and for a thin image that every mount source exists on this host',
      withImageArgument,
      async (argv) => {
        const { checkImage, MISSING_SOURCES } = await import('../../aci/check.js')
        const report = await checkImage(argv.aci)
        if (argv.json) process.stdout.write(`${JSON.stringify(report)}\n`)
        else if (report.valid) process.stdout.write(`${displayPath(argv.aci)}: valid (actool ${report.actool})\n`)
        else {
          const missing = report.missingMountSources.map((path) => `  missing: ${path}`)
          const others = report.problems.filter((p) => !p.startsWith(MISSING_SOURCES))
          process.stdout.write(
            [`${displayPath(argv.aci)}: invalid`, ...others.map((p) => `  ${p}`), ...missing].join('\n') + '\n',
          )
        }
        if (!report.valid) process.exitCode = 1
      },
    )
}
