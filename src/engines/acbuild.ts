// The acbuild engine: the same plan written by driving the real acbuild through zx, one subcommand
// per setting, in a work path of its own so that concurrent builds never share a `.acbuild` directory.
//
// A call costs what acbuild costs, as in the original buildThinACI script: the calls run from one
// plain shell loop that zx starts. Spawned from Node one by one, each call cost 2.5 ms more than
// from a shell (5 ms on a loaded machine; acbuild itself takes about 10 ms), since Node forks a large
// process, and zx's shell around each call as much again. Nor is a call made that restates what
// acbuild sets by itself: the manifest stays JSON-equal to the native engine's.
// Not `acbuild script`: measured with 200 mounts, script mode was slower in acbuild 0.4.0 (3 s
// against 2 s) and fails outright in the repository's latest build
// ("open /tmp/acbuildNNN/.acbuild/buildMode: no such file or directory").
import { spawn, type SpawnOptions } from 'node:child_process'
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
// zx's core, without the globals and extras its index loads (a third of the load time); loaded
// with this module, which builds load while nix-env runs.
import { $ } from 'zx/core'
import { imageIdOf } from '../aci/read.js'
import type { NameValue } from '../plan/app-options.js'
import type { AppPlan, SkeletonEntry } from '../plan/plan.js'
import { killOnAbort } from '../util/cancel.js'
import { UserError } from '../util/errors.js'
import { errorLine } from '../util/exec.js'
import { shellQuote } from '../util/shell.js'
import type { WriteImage } from './engine.js'

/** What `set-exec` sets when it creates the app: acbuild runs apps as root unless told otherwise. */
const ACBUILD_APP_DEFAULTS = { user: '0', group: '0' }

export const writeImage: WriteImage = async (plan, output, { staging, signal }) => {
  const workPath = join(staging, 'acbuild')
  const acbuild = acbuildIn(workPath, staging, signal)
  const skeletonDir = join(staging, 'skeleton')
  const isolatorFiles = plan.app.isolators.map((_, i) => join(staging, `isolator-${i}.json`))
  await Promise.all([
    mkdir(workPath),
    materializeSkeleton(plan.skeleton, skeletonDir),
    // acbuild reads an isolator's value from a file.
    ...plan.app.isolators.map((isolator, i) => writeFile(isolatorFiles[i]!, JSON.stringify(isolator.value))),
  ])

  // `begin` from the skeleton directory starts the rootfs as a copy of it.
  await acbuild([['begin', skeletonDir]])
  const calls: Call[] = [
    ['set-name', plan.name],
    ...(await labelsToAdd(workPath, plan.labels)).map((label): Call => ['label', 'add', label.name, label.value]),
    // A layered image's layers, written by the native engine before, pinned by image ID.
    ...plan.dependencies.map((dependency): Call => [
      'dependency',
      'add',
      dependency.imageName,
      ...(dependency.imageID ? ['--image-id', dependency.imageID] : []),
      ...(dependency.labels ?? []).flatMap((label) => ['--label', `${label.name}=${label.value}`]),
    ]),
    ...(plan.storePaths.length > 0 ? [['copy-to-dir', ...plan.storePaths, plan.storeDir]] : []),
    ...appCalls(plan.app, isolatorFiles),
    ...plan.annotations.map((annotation): Call => ['annotation', 'add', annotation.name, annotation.value]),
  ]
  // No `end`: all it does is remove the work path, which goes with the build's staging directory.
  const write: Call = ['write', '--overwrite', output]
  if (plan.app.supplementaryGIDs.length === 0) {
    await acbuild([...calls, write])
  } else {
    await acbuild(calls)
    await acbuild([await withSupplementaryGIDs(workPath, plan.app.supplementaryGIDs, staging), write])
  }
  return { imageId: await imageIdOf(output, signal) }
}

/** The words of one acbuild call after `acbuild`. */
type Call = string[]

/** How the shell loop names the call that failed. */
const FAILED_CALL = 'nix2aci: failed acbuild call: '

/** Runs acbuild calls in order and resolves to their stdout, or fails with acbuild's own one-line error. */
type Acbuild = (calls: Call[]) => Promise<string>

function acbuildIn(workPath: string, staging: string, signal: AbortSignal): Acbuild {
  // zx resolves once the shell has exited, so an aborted build's cleanups never race a running acbuild.
  const $acbuild = $({ quiet: true, nothrow: true, signal, detached: true, spawn: groupSpawn(signal) })
  let batches = 0
  return async (calls) => {
    const script = join(staging, `acbuild-${batches++}.sh`)
    await writeFile(
      script,
      [
        // The first call to fail ends the script, naming its subcommand on the last line of stderr.
        `a() { acbuild --work-path ${shellQuote([workPath])} --no-history "$@" || { s=$?; echo "${FAILED_CALL}$1" >&2; exit $s; }; }`,
        ...calls.map((call) => `a ${shellQuote(call)}`),
        '',
      ].join('\n'),
    )
    // Sourced by the shell zx starts: one shell for the whole loop.
    const result = await $acbuild`. ${script}`
    signal.throwIfAborted()
    if (result.exitCode !== 0) {
      const lines = result.stderr.trim().split('\n')
      const subcommand = lines.at(-1)?.startsWith(FAILED_CALL) ? lines.pop()!.slice(FAILED_CALL.length) : 'script'
      throw new UserError(`acbuild ${subcommand} failed: ${errorLine(lines.join('\n')) ?? `exit ${result.exitCode}`}`)
    }
    return result.stdout
  }
}

/**
 * Spawns the shell in a process group of its own (zx's `detached`) whose every kill, the abort's
 * SIGTERM and its SIGKILL after a bound, stops the whole group: the running acbuild with its shell.
 */
function groupSpawn(signal: AbortSignal): typeof spawn {
  return ((command: string, args: readonly string[], options: SpawnOptions) => {
    const child = spawn(command, args, options)
    const killChild = child.kill.bind(child)
    child.kill = (killSignal) => {
      try {
        return process.kill(-child.pid!, killSignal)
      } catch {
        return killChild(killSignal) // the group is gone already
      }
    }
    return killOnAbort(child, signal)
  }) as typeof spawn
}

/**
 * The plan's labels after those `begin` set already (`arch` and `os` of the platform acbuild runs
 * on), read from the manifest acbuild keeps in its work path. acbuild puts a label added again last,
 * so the plan's order holds once the rest are added in order.
 */
async function labelsToAdd(workPath: string, labels: NameValue[]): Promise<NameValue[]> {
  const set = (await manifestSoFar(workPath)).labels ?? []
  const same = labels.findIndex((label, i) => label.name !== set[i]?.name || label.value !== set[i]?.value)
  const kept = same < 0 ? labels.length : same
  // Only a whole prefix of begin's labels in begin's order can be kept; anything else is added again.
  return kept === set.length ? labels.slice(kept) : labels
}

/** The app section, one acbuild call per setting that acbuild does not already have. */
function appCalls(app: AppPlan, isolatorFiles: string[]): Call[] {
  return [
    ['set-exec', '--', ...app.exec],
    ...app.eventHandlers.map((handler): Call => ['set-event-handler', handler.name, '--', ...handler.exec]),
    ...(app.user !== ACBUILD_APP_DEFAULTS.user ? [['set-user', app.user]] : []),
    ...(app.group !== ACBUILD_APP_DEFAULTS.group ? [['set-group', app.group]] : []),
    ...(app.workingDirectory !== undefined ? [['set-working-directory', app.workingDirectory]] : []),
    ...app.environment.map((variable): Call => ['environment', 'add', variable.name, variable.value]),
    ...app.mountPoints.map((mount): Call => [
      'mount',
      'add',
      mount.name,
      mount.path,
      ...(mount.readOnly ? ['--read-only'] : []),
    ]),
    ...app.ports.map((port): Call => [
      'port',
      'add',
      port.name,
      port.protocol,
      String(port.port),
      '--count',
      String(port.count),
      ...(port.socketActivated ? ['--socket-activated'] : []),
    ]),
    ...app.isolators.map((isolator, i): Call => ['isolator', 'add', isolator.name, isolatorFiles[i]!]),
  ]
}

/** The manifest acbuild keeps in its work path, as its calls so far left it (what `cat-manifest` prints). */
async function manifestSoFar(workPath: string): Promise<{ labels?: NameValue[]; app?: Record<string, unknown> }> {
  return JSON.parse(await readFile(join(workPath, '.acbuild/currentaci/manifest'), 'utf8')) as {
    labels?: NameValue[]
    app?: Record<string, unknown>
  }
}

/**
 * acbuild 0.4.0 has no subcommand for supplementary GIDs: the manifest acbuild has so far, with
 * them added, goes back through `replace-manifest`, which validates it as every subcommand does.
 * Returns that call.
 */
async function withSupplementaryGIDs(workPath: string, gids: number[], staging: string): Promise<Call> {
  const manifest = await manifestSoFar(workPath)
  manifest.app = { ...manifest.app, supplementaryGIDs: gids }
  const file = join(staging, 'manifest-with-supplementary-gids.json')
  await writeFile(file, JSON.stringify(manifest))
  return ['replace-manifest', file]
}

/** Lays the skeleton out on disk, the rootfs `begin` starts from. */
async function materializeSkeleton(skeleton: readonly SkeletonEntry[], dir: string): Promise<void> {
  await mkdir(dir)
  // In order: parents are listed before their children.
  for (const entry of skeleton) {
    const path = join(dir, entry.path)
    if (entry.type === 'dir') await mkdir(path, { mode: 0o755 })
    else if (entry.type === 'file') await writeFile(path, entry.content, { mode: 0o644 })
    else await symlink(entry.target, path)
  }
}
