#!/usr/bin/env node
// `npm run bench [-- --quick] [-- --only thin|fat|travel|layered]`: times nix2aci against baselines measured in the
// same run on synthetic closures (fixtures/synthetic.nix) and prints the ratios against the targets.
// acbuild is timed when it is on PATH (PATH=/opt/acbuild/bin:$PATH npm run bench), or named by
// ACBUILD=/path/to/acbuild.
//
// Thin: the floor is what a thin build cannot avoid (nix-env -iA into a fresh profile, nix-store -qR,
// an empty Node start); nix2aci thin should cost at most 1.5 floors and grow linearly in the closure.
// With acbuild, its baseline is the floor plus the bare acbuild calls a thin build needs, from a plain
// shell loop (begin, set-name, label add x2, mount add per path, set-exec, write, end), as the
// original buildThinACI script made them; nix2aci thin --engine acbuild should cost at most 1.2 of it.
// Fat: the baseline is `tar -cf - <closure> | gzip -6` of the same data; nix2aci fat --engine native
// should cost at most 1.0 of it with plain gzip, 0.6 with pigz on 2 cores, and peak under 200 MB
// whatever the closure size.
// Travel: `nix2aci export -o - | nix2aci import -` of a thin image over a 100 MiB closure into an empty
// store should cost at most 1.2 of `nix-store --export | nix-store --import` of the same paths into one.
// Layered: on a 100-path closure (99 synthetic paths and a one-file `marker` package), a full layered
// build into a fresh out-dir should cost at most 1.1 of the fat build of the same packages (both gzip,
// native), a rebuild in that out-dir with the marker changed (one store path: its layer and the app image
// are new) at most 0.1 of the full build, and the full build peak under 200 MB at 1 GiB.
//
// The report always exits 0 (a missed target prints FAIL); only a crash exits non-zero.
import { spawnSync } from 'node:child_process'
import {
  accessSync,
  constants,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { availableParallelism, constants as osConstants, tmpdir } from 'node:os'
import { basename, delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const repo = fileURLToPath(new URL('..', import.meta.url))
const cli = join(repo, 'dist/bin/nix2aci.js')
const syntheticNix = join(repo, 'fixtures/synthetic.nix')
const node = process.execPath
const gnuTime = '/usr/bin/time'
const KiB = 1024
const MiB = 1024 * KiB

const TARGET = {
  thinRatio: 1.5,
  thinAcbuild: 1.2,
  fatZlib: 1.0,
  fatPigz: 0.6,
  peakMB: 200,
  layeredFull: 1.1,
  layeredRebuild: 0.1,
  peakGrowth: 1.25,
  linearGrowth: 2,
  travelRatio: 1.2,
}

/** Sizes and repetitions (medians are taken); the fat closures share a path count so only bytes differ. */
function plan(quick) {
  const fat = (label, bytesPerPath, reps) => ({ label, paths: 128, bytesPerPath, reps })
  const layered = (label, bytesPerPath, reps) => ({ label, paths: 100, bytesPerPath, reps })
  return quick
    ? {
        thin: [
          { paths: 10, reps: 3 },
          { paths: 100, reps: 3 },
        ],
        fat: [fat('100 MiB', 800 * KiB, 2)],
        travel: { label: '100 MiB', paths: 128, bytesPerPath: 800 * KiB, reps: 2 },
        layered: [layered('100 MiB', 1 * MiB, 2)],
      }
    : {
        thin: [
          { paths: 10, reps: 9 },
          { paths: 100, reps: 9 },
          { paths: 1000, reps: 5 },
          // Only for the linearity check: far enough from 1000 that a per-path cost stands out of the
          // noise. No acbuild here: each mount add rewrites the whole manifest, so a build at 1000 paths
          // already takes over a minute; at 3000 the run would take most of an hour.
          { paths: 3000, reps: 5, linearityOnly: true },
        ],
        fat: [fat('100 MiB', 800 * KiB, 3), fat('1 GiB', 8 * MiB, 2)],
        travel: { label: '100 MiB', paths: 128, bytesPerPath: 800 * KiB, reps: 5 },
        layered: [layered('100 MiB', 1 * MiB, 3), layered('1 GiB', 10 * MiB, 2)],
      }
}

// ---- running things -------------------------------------------------------------------------------

// spawnSync blocks signal handlers, so a signal is only noted here and acted on between two runs.
let stopSignal
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => (stopSignal ??= signal))

/** Runs argv to completion; returns its wall time in ms and stdout, or throws with its stderr. */
async function run(argv) {
  await new Promise(setImmediate) // lets a pending signal handler run
  if (stopSignal) throw new Error(`interrupted by ${stopSignal}`)
  const started = performance.now()
  const result = spawnSync(argv[0], argv.slice(1), {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * MiB,
  })
  const ms = performance.now() - started
  if (result.error) throw new Error(`cannot run ${argv[0]}: ${result.error.message}`)
  if (result.status !== 0) {
    const how = result.signal ? `killed by ${result.signal}` : `exit ${result.status}`
    throw new Error(`${shown(argv)} failed (${how}):\n${result.stderr.trim()}`)
  }
  return { ms, stdout: result.stdout }
}

/** A command line for messages, with long lists of store paths cut short. */
function shown(argv) {
  const words = argv.length > 16 ? [...argv.slice(0, 14), `... (${argv.length - 14} more)`] : argv
  return words.join(' ')
}

/** `command` in each PATH directory, in order, whether it is there or not. */
function pathCandidates(command) {
  return (process.env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .map((dir) => join(dir, command))
}

function onPath(command) {
  return pathCandidates(command).find(isExecutable)
}

/** Every executable `command` on PATH, resolved: what a bind mount has to cover to hide it. */
function allOnPath(command) {
  return [
    ...new Set(
      pathCandidates(command)
        .filter(isExecutable)
        .map((path) => realpathSync(path)),
    ),
  ]
}

function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

// ---- work directory, closures and clean-up --------------------------------------------------------

const work = mkdtempSync(join(tmpdir(), 'nix2aci-bench-'))

/** A new, empty directory per run, so no run sees another's profile or image. */
function freshDir() {
  return mkdtempSync(join(work, 'run-'))
}

/**
 * Removes the work directory and the indirect GC roots Nix registered for links in it (out-links and
 * profile generations): Nix would drop them as dangling at the next GC, but every run adds dozens.
 */
function cleanUp() {
  rmSync(work, { recursive: true, force: true })
  const auto = '/nix/var/nix/gcroots/auto'
  let roots = []
  try {
    roots = readdirSync(auto)
  } catch {
    return // no auto roots directory: nothing registered
  }
  for (const root of roots) {
    const link = join(auto, root)
    try {
      if (readlinkSync(link).startsWith(`${work}/`)) rmSync(link)
    } catch {
      // gone meanwhile or not a link: not ours
    }
  }
}

/**
 * Builds a synthetic closure outside the timings, kept alive by an out-link in the work directory,
 * and returns the Nix file that names it `synthetic`, its store paths and their size on disk.
 */
async function buildClosure(paths, bytesPerPath) {
  const key = `synthetic-${paths}x${bytesPerPath}`
  const file = join(work, `${key}.nix`)
  writeFileSync(
    file,
    `{ synthetic = import ${JSON.stringify(syntheticNix)} { paths = ${paths}; bytesPerPath = ${bytesPerPath}; }; }\n`,
  )
  const root = join(work, `${key}.root`)
  const started = performance.now()
  await run(['nix-build', file, '-A', 'synthetic', '--out-link', root])
  const storePaths = (await run(['nix-store', '-qR', root])).stdout.trim().split('\n').sort()
  if (storePaths.length !== paths) throw new Error(`${key}: the closure has ${storePaths.length} paths, not ${paths}`)
  const du = (await run(['du', '-sbc', ...storePaths])).stdout.trim().split('\n').at(-1)
  const bytes = Number(du.split('\t')[0])
  progress(`built ${key}: ${paths} paths, ${formatBytes(bytes)} (${seconds(performance.now() - started)})`)
  return { file, storePaths, bytes }
}

// ---- measurements ---------------------------------------------------------------------------------

/**
 * The floor of a thin build: the Nix commands it cannot avoid, plus an empty Node start. With
 * `acbuild`, then the bare acbuild calls of a thin build over the closure nix-store printed.
 */
async function thinFloor(closure, acbuild) {
  const dir = freshDir()
  const profile = join(dir, 'profile')
  const steps = [
    ['nix-env', '-f', closure.file, '-p', profile, '-iA', 'synthetic'],
    ['nix-store', '-qR', profile],
    [node, '-e', '0'],
  ]
  let ms = 0
  let storePaths = []
  for (const step of steps) {
    const result = await run(step)
    ms += result.ms
    if (step[0] === 'nix-store') storePaths = result.stdout.trim().split('\n')
  }
  const acbuildMs = acbuild ? (await run(acbuildSequence(acbuild, dir, profile, storePaths))).ms : undefined
  rmSync(dir, { recursive: true })
  return { ms, acbuildMs }
}

/** The appc spelling of this machine's architecture, as acbuild and nix2aci label images. */
const appcArch = { x64: 'amd64', arm64: 'aarch64', ia32: 'i386' }[process.arch] ?? process.arch

/** The acbuild calls a thin build needs, one after another from a plain shell loop. */
function acbuildSequence(acbuild, dir, profile, storePaths) {
  const script = `set -e
acbuild=$1 work=$2 profile=$3 arch=$4; shift 4
a() { "$acbuild" --work-path "$work" --no-history "$@"; }
a begin
a set-name synthetic
a label add arch "$arch"
a label add os linux
# Named as the original script named them, the path without its slashes and dots.
for path in "$@"; do a mount add "\${path//[\\/.]/}" "$path" --read-only; done
a mount add resolv-conf /etc/resolv.conf --read-only
a set-exec -- "$profile/bin/synthetic"
a write "$work/image.aci"
a end`
  return ['bash', '-c', script, 'bash', acbuild, dir, profile, appcArch, ...storePaths]
}

/**
 * One `nix2aci <kind>` build as a user runs it (actool validation included when installed) into a
 * fresh out-dir. `prefix` wraps it (bwrap to hide pigz); `peak` adds GNU time for the peak RSS in MB,
 * which is that of the largest process in the build (node, pigz, nix-env, actool).
 */
async function nix2aci(
  kind,
  engine,
  closure,
  { prefix = [], peak = false, packages = ['synthetic'], args = [], dir } = {},
) {
  const keep = dir !== undefined
  dir ??= freshDir()
  const peakFile = join(dir, 'peak-rss')
  const timeArgv = peak ? [gnuTime, '-f', '%M', '-o', peakFile] : []
  const argv = [
    ...prefix,
    ...timeArgv,
    node,
    cli,
    kind,
    'synthetic',
    'synthetic',
    ...packages,
    '-f',
    closure.file,
    ...args,
    '--out-dir',
    join(dir, 'out'),
    '--engine',
    engine,
    '--json',
    '--quiet',
  ]
  const { ms, stdout } = await run(argv)
  const result = JSON.parse(stdout)
  if (result.kind !== kind || result.engine !== engine)
    throw new Error(`${shown(argv)} built a ${result.kind} image with ${result.engine}`)
  const peakMB = peak ? (Number(readFileSync(peakFile, 'utf8').trim().split('\n').at(-1)) * KiB) / 1e6 : undefined
  if (keep) rmSync(peakFile, { force: true })
  else rmSync(dir, { recursive: true })
  return { ms, peakMB, result }
}

/** The fat baseline: the closure's tar at gzip's level 6, written to a file as nix2aci writes one. */
async function tarGzip(closure) {
  const dir = freshDir()
  const script = 'out=$1; shift; tar -cf - "$@" | gzip -6 > "$out"'
  const { ms } = await run([
    'bash',
    '-o',
    'pipefail',
    '-c',
    script,
    'bash',
    join(dir, 'closure.tar.gz'),
    ...closure.storePaths,
  ])
  rmSync(dir, { recursive: true })
  return { ms }
}

/** Reads the whole closure once, so that no measured run pays for reading it from disk. */
async function warmPageCache(closure) {
  await run(['bash', '-o', 'pipefail', '-c', 'tar -cf - "$@" | wc -c', 'bash', ...closure.storePaths])
}

/**
 * The bwrap prefix that makes nix2aci fall back to node's zlib: /dev/null (not executable) bound over
 * every pigz on PATH. Checked the way nix2aci looks pigz up, so a leak cannot pass for zlib numbers.
 */
async function pigzHidingPrefix() {
  const prefix = [
    'bwrap',
    '--dev-bind',
    '/',
    '/',
    ...allOnPath('pigz').flatMap((pigz) => ['--bind', '/dev/null', pigz]),
    '--',
  ]
  const lookup = `const { accessSync, constants } = require('node:fs')
    const found = process.env.PATH.split(':').filter((dir) => { try { accessSync(dir + '/pigz', constants.X_OK); return true } catch { return false } })
    if (found.length > 0) { console.error('pigz still executable in ' + found.join(', ')); process.exit(1) }`
  await run([...prefix, node, '-e', lookup])
  return prefix
}

/** The same list started at a different place each repetition, so no variant always runs first. */
function rotate(list, by) {
  const start = by % list.length
  return [...list.slice(start), ...list.slice(0, start)]
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/** Runs each variant `reps` times, interleaved; returns every variant's samples by name. */
async function interleaved(variants, reps, label) {
  const samples = Object.fromEntries(variants.map((variant) => [variant.name, []]))
  for (let rep = 0; rep < reps; rep++) {
    progress(`${label}: repetition ${rep + 1}/${reps}`)
    for (const variant of rotate(variants, rep)) {
      if (variant.once && rep > 0) continue
      samples[variant.name].push(await variant.run())
    }
  }
  return samples
}

async function benchThin(sizes, tools) {
  const rows = []
  for (const [index, { paths, reps, linearityOnly = false }] of sizes.entries()) {
    const closure = await buildClosure(paths, 1 * KiB)
    const timeAcbuild = tools.acbuild && !linearityOnly
    const variants = [
      { name: 'floor', run: () => thinFloor(closure, timeAcbuild && tools.acbuild) },
      { name: 'native', run: () => nix2aci('thin', 'native', closure) },
      ...(timeAcbuild ? [{ name: 'acbuild', run: () => nix2aci('thin', 'acbuild', closure) }] : []),
    ]
    // Unmeasured: the first nix-env of a size builds its user environment; the very first runs load
    // node, nix2aci and acbuild from disk.
    for (const variant of index === 0 ? variants : variants.slice(0, 1)) await variant.run()
    const samples = await interleaved(variants, reps, `thin ${paths} paths`)
    const ms = (name) => (samples[name] ? median(samples[name].map((sample) => sample.ms)) : undefined)
    // The acbuild baseline of each repetition is its floor plus its acbuild calls.
    const acbuildBase = timeAcbuild ? median(samples.floor.map((sample) => sample.ms + sample.acbuildMs)) : undefined
    rows.push({
      paths,
      reps,
      linearityOnly,
      floor: ms('floor'),
      native: ms('native'),
      acbuild: ms('acbuild'),
      acbuildBase,
    })
  }
  return rows
}

async function benchFat(sizes, tools) {
  // With pigz installed the plain-gzip build needs it hidden; without pigz it is the only build there is.
  const zlibPrefix = !tools.pigz ? [] : tools.bwrap ? await pigzHidingPrefix() : undefined
  const rows = []
  for (const { label, paths, bytesPerPath, reps } of sizes) {
    const closure = await buildClosure(paths, bytesPerPath)
    await warmPageCache(closure)
    const variants = [
      { name: 'baseline', run: () => tarGzip(closure) },
      ...(zlibPrefix
        ? [{ name: 'zlib', run: () => nix2aci('fat', 'native', closure, { prefix: zlibPrefix, peak: true }) }]
        : []),
      ...(tools.pigz ? [{ name: 'pigz', run: () => nix2aci('fat', 'native', closure, { peak: true }) }] : []),
      // acbuild copies the closure into its work path and compresses on one core: slow, so timed once.
      ...(tools.acbuild ? [{ name: 'acbuild', once: true, run: () => nix2aci('fat', 'acbuild', closure) }] : []),
    ]
    const samples = await interleaved(variants, reps, `fat ${label}`)
    const ms = (name) => (samples[name] ? median(samples[name].map((sample) => sample.ms)) : undefined)
    const peak = (name) => (samples[name] ? Math.max(...samples[name].map((sample) => sample.peakMB)) : undefined)
    rows.push({
      label,
      paths,
      reps,
      bytes: closure.bytes,
      baseline: ms('baseline'),
      zlib: ms('zlib'),
      pigz: ms('pigz'),
      acbuild: ms('acbuild'),
      zlibPeak: peak('zlib'),
      pigzPeak: peak('pigz'),
    })
  }
  return rows
}

/**
 * Export and import of a thin image over a closure, against `nix-store --export | nix-store --import`
 * of the same paths, into two stores. The judged one is an empty store of its own, made before each
 * run and not timed (`NIX_REMOTE=local?root=DIR` on the importing side): the other host's store, which
 * lacks the closure, so that nix-store writes every path as it does where an export is for. The other is
 * this host's own store, which has every path already: nix-store reads and checks each NAR but writes
 * none, so Nix's share of the work is smallest there; its ratio is shown, not judged.
 */
async function benchTravel({ label, paths, bytesPerPath, reps }) {
  const closure = await buildClosure(paths, bytesPerPath)
  const dir = freshDir()
  const built = join(dir, 'built')
  await run([node, cli, 'thin', 'synthetic', 'synthetic', 'synthetic', '-f', closure.file, '--out-dir', built, '-q'])
  const image = join(built, 'synthetic.aci')
  const imageClosure = (await run(['nix-store', '-qR', join(built, 'synthetic.profile')])).stdout.trim().split('\n')
  await warmPageCache(closure)
  // $1 is the empty store's root, made (with its database, untimed) in a fresh dir; $2 an out-dir.
  const timed = async (script, args) => {
    const at = freshDir()
    const into = join(at, 'store')
    await run(['env', `NIX_REMOTE=local?root=${into}`, 'nix-store', '--init'])
    const { ms } = await run(['bash', '-o', 'pipefail', '-c', script, 'bash', into, join(at, 'imported'), ...args])
    rmSync(at, { recursive: true })
    return { ms }
  }
  const variantsInto = (store) => {
    const importing = store === 'empty' ? 'NIX_REMOTE="local?root=$1" ' : ''
    const pipe = `nix-store --export "\${@:3}" | ${importing}nix-store --import > /dev/null`
    return [
      { name: `${store} baseline`, run: () => timed(pipe, imageClosure) },
      // What two Node commands in a pipe cannot avoid: two Node starts side by side, then the nix-store pipe.
      { name: `${store} floor`, run: () => timed(`node -e 0 | node -e 0 && ${pipe}`, imageClosure) },
      // The pipe form: export to standard output, import from standard input, as on two hosts over ssh.
      {
        name: `${store} nix2aci`,
        run: () =>
          timed(`"$3" "$4" export "$5" -o - -q | ${importing}"$3" "$4" import - --out-dir "$2" -q`, [node, cli, image]),
      },
    ]
  }
  const variants = [...variantsInto('empty'), ...variantsInto('this')]
  for (const variant of variants) await variant.run() // unmeasured: the first runs load from disk
  const samples = await interleaved(variants, reps, `travel ${label}`)
  const ms = (name) => median(samples[name].map((sample) => sample.ms))
  const into = (store) => ({
    baseline: ms(`${store} baseline`),
    floor: ms(`${store} floor`),
    nix2aci: ms(`${store} nix2aci`),
  })
  return {
    label,
    paths: imageClosure.length,
    reps,
    bytes: closure.bytes,
    empty: into('empty'),
    this: into('this'),
  }
}

/**
 * The layered closure: the synthetic one (paths - 1) and a `marker` package whose content `--argstr
 * marker` sets, both built (and kept) before any timing, so a rebuild changes exactly one store path.
 */
async function buildLayeredClosure(paths, bytesPerPath) {
  const synthetic = await buildClosure(paths - 1, bytesPerPath)
  const file = join(work, `layered-${paths}x${bytesPerPath}.nix`)
  writeFileSync(
    file,
    `{ marker ? "1" }: (import ${JSON.stringify(synthetic.file)}) // { marker = derivation { name = "marker"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo \${marker} > $out" ]; }; }\n`,
  )
  for (const marker of ['1', '2'])
    await run([
      'nix-build',
      file,
      '-A',
      'marker',
      '--argstr',
      'marker',
      marker,
      '--out-link',
      join(work, `marker-${marker}`),
    ])
  return { ...synthetic, file }
}

async function benchLayered(sizes) {
  const rows = []
  for (const { label, paths, bytesPerPath, reps } of sizes) {
    const closure = await buildLayeredClosure(paths, bytesPerPath)
    await warmPageCache(closure)
    const marker = (value) => ({ packages: ['synthetic', 'marker'], args: ['--argstr', 'marker', value] })
    const samples = { fat: [], full: [], rebuild: [], written: [] }
    for (let rep = 0; rep < reps; rep++) {
      progress(`layered ${label}: repetition ${rep + 1}/${reps}`)
      samples.fat.push(await nix2aci('fat', 'native', closure, marker('1')))
      const dir = freshDir()
      samples.full.push(await nix2aci('layered', 'native', closure, { ...marker('1'), dir, peak: true }))
      const rebuild = await nix2aci('layered', 'native', closure, { ...marker('2'), dir })
      samples.rebuild.push(rebuild)
      samples.written.push(rebuild.result.layers.written.length)
      rmSync(dir, { recursive: true })
    }
    const ms = (name) => median(samples[name].map((sample) => sample.ms))
    rows.push({
      label,
      paths,
      reps,
      bytes: closure.bytes,
      fat: ms('fat'),
      full: ms('full'),
      rebuild: ms('rebuild'),
      peak: Math.max(...samples.full.map((sample) => sample.peakMB)),
      written: Math.max(...samples.written),
    })
  }
  return rows
}

function reportLayered(rows) {
  console.log(
    `\nLayered builds: median s of ${rows.map((row) => row.reps).join('/')} runs; fat and full layered in fresh out-dirs,`,
  )
  console.log(
    "  rebuild: layered again into the full build's out-dir with one store path (marker) changed; gzip, native",
  )
  console.log(
    table(
      [
        'closure',
        'size',
        'fat s',
        'layered s',
        'layered/fat',
        'rebuild s',
        'rebuild/full',
        'layers rewritten',
        'peak MB',
      ],
      rows.map((row) => [
        `${row.label} (${row.paths} paths)`,
        formatBytes(row.bytes),
        fixed(1)(row.fat / 1000),
        fixed(1)(row.full / 1000),
        ratio(row.full / row.fat),
        fixed(2)(row.rebuild / 1000),
        ratio(row.rebuild / row.full),
        row.written,
        mb(row.peak),
      ]),
    ),
  )
  const largest = rows.at(-1)
  return [
    {
      check: `layered full / fat <= ${TARGET.layeredFull} at ${largest.label}`,
      measured: rows.map((row) => `${row.label}: ${ratio(row.full / row.fat)}`).join(', '),
      pass: largest.full / largest.fat <= TARGET.layeredFull,
    },
    {
      check: `layered rebuild (one path changed) / full <= ${TARGET.layeredRebuild} at ${largest.label}`,
      measured: rows.map((row) => `${row.label}: ${ratio(row.rebuild / row.full)}`).join(', '),
      pass: largest.rebuild / largest.full <= TARGET.layeredRebuild,
    },
    {
      check: `layered peak memory < ${TARGET.peakMB} MB`,
      measured: `${rows.map((row) => mb(row.peak)).join(' / ')} MB`,
      pass: rows.every((row) => row.peak < TARGET.peakMB),
    },
  ]
}

// ---- report ---------------------------------------------------------------------------------------

function progress(message) {
  process.stderr.write(`  ... ${message}\n`)
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`
}

function formatBytes(bytes) {
  return bytes >= 1024 * MiB
    ? `${(bytes / 1024 / MiB).toFixed(2)} GiB`
    : bytes >= MiB
      ? `${(bytes / MiB).toFixed(1)} MiB`
      : `${(bytes / KiB).toFixed(1)} KiB`
}

const fixed = (digits) => (value) => (value === undefined || Number.isNaN(value) ? '-' : value.toFixed(digits))
const ms0 = fixed(0)
const ratio = fixed(2)
const mb = fixed(0)

function verdict(pass) {
  return pass === undefined ? 'n/a' : pass ? 'PASS' : 'FAIL'
}

/** Columns padded to their widest cell: the first `left` ones left-aligned, the rest (numbers) right-aligned. */
function table(header, rows, left = 1) {
  const widths = header.map((_, column) => Math.max(...[header, ...rows].map((row) => String(row[column]).length)))
  const pad = (cell, column) =>
    column < left ? String(cell).padEnd(widths[column]) : String(cell).padStart(widths[column])
  const line = (row) => row.map(pad).join('  ')
  return [line(header), ...rows.map(line)].map((text) => `  ${text.trimEnd()}`).join('\n')
}

/** ms per path that a build costs above the 10-path build: constant when the cost is linear. */
function perPath(rows, name) {
  const [first, ...rest] = rows
  return rest.map((row) => (row[name] - first[name]) / (row.paths - first.paths))
}

function reportThin(rows, tools) {
  const checks = []
  console.log(
    `\nThin builds: median ms of ${rows.map((row) => row.reps).join('/')} interleaved runs; floor = nix-env -iA + nix-store -qR + node -e 0`,
  )
  if (tools.acbuild)
    console.log(
      `  acbuild base = floor + the bare acbuild calls from a shell loop (begin, set-name, label add x2, mount add per path, set-exec, write, end)`,
    )
  console.log(
    `  nix2aci runs with its compile cache, as every build after the first does (the first: about 20 ms more)`,
  )
  console.log(
    table(
      [
        'paths',
        'floor ms',
        'native ms',
        'native-floor',
        'native/floor',
        'acbuild base ms',
        'acbuild ms',
        'acbuild/base',
      ],
      rows.map((row) => [
        row.paths,
        ms0(row.floor),
        ms0(row.native),
        ms0(row.native - row.floor),
        ratio(row.native / row.floor),
        row.acbuildBase === undefined ? '-' : ms0(row.acbuildBase),
        !tools.acbuild ? 'not installed' : row.linearityOnly ? 'not timed' : ms0(row.acbuild),
        row.acbuild === undefined ? '-' : ratio(row.acbuild / row.acbuildBase),
      ]),
    ),
  )
  const targetRows = rows.filter((row) => !row.linearityOnly)
  const sizes = targetRows.map((row) => row.paths).join('/')
  const ratios = targetRows.map((row) => row.native / row.floor)
  checks.push({
    check: `thin native/floor <= ${TARGET.thinRatio} (${sizes} paths)`,
    measured: ratios.map(ratio).join(' / '),
    pass: ratios.every((value) => value <= TARGET.thinRatio),
  })
  const acbuildRatios = targetRows.map((row) => row.acbuild / row.acbuildBase)
  checks.push({
    check: `thin acbuild / (floor + bare acbuild calls) <= ${TARGET.thinAcbuild} (${sizes} paths)`,
    measured: tools.acbuild ? acbuildRatios.map(ratio).join(' / ') : 'acbuild not installed',
    pass: tools.acbuild ? acbuildRatios.every((value) => value <= TARGET.thinAcbuild) : undefined,
  })

  // Linear: nix2aci's own cost per path (above the floor, so Nix's share and machine drift, common to
  // both interleaved runs, cancel out) is the same from the largest target size on as below it. A
  // quadratic cost has four times the slope from 1000 to 3000 paths as from 10 to 1000; linear, one.
  // Twice, plus 5 ms per 1000 paths for the noise of medians, is the limit.
  const withExcess = rows.map((row) => ({ ...row, 'native-floor': row.native - row.floor }))
  const names = ['floor', 'native', 'native-floor', ...(tools.acbuild ? ['acbuild'] : [])]
  const laterSizes = rows.slice(1).map((row) => `at ${row.paths}`)
  console.log(`  ms per path above the ${rows[0].paths}-path build (equal at every size when growth is linear):`)
  console.log(
    table(
      ['ms/path', ...laterSizes],
      names.map((name) => [name, ...perPath(withExcess, name).map(fixed(3))]),
    ),
  )
  const beyond = withExcess.find((row) => row.linearityOnly)
  const largest = withExcess.filter((row) => !row.linearityOnly).at(-1)
  const slope = (from, to) => (to['native-floor'] - from['native-floor']) / (to.paths - from.paths)
  const slopes = beyond ? [slope(withExcess[0], largest), slope(largest, beyond)] : undefined
  checks.push({
    check: `thin native cost above the floor grows linearly (${withExcess[0].paths}-${largest.paths} vs ${largest.paths}-${beyond?.paths ?? '?'} paths)`,
    measured: slopes ? `${slopes.map(fixed(3)).join(' / ')} ms/path` : 'needs the full run',
    pass: slopes ? slopes[1] <= TARGET.linearGrowth * slopes[0] + 0.005 : undefined,
  })
  return checks
}

function reportFat(rows, tools) {
  const checks = []
  const zlibNote = !tools.pigz
    ? 'pigz not installed'
    : tools.bwrap
      ? 'pigz hidden with bwrap'
      : 'skipped: bwrap is needed to hide pigz'
  console.log(
    `\nFat builds: median s of ${rows.map((row) => row.reps).join('/')} interleaved runs; baseline = tar -cf - <closure> | gzip -6 > file`,
  )
  console.log(
    `  native/zlib: nix2aci fat --engine native with node's zlib (${zlibNote}); native/pigz: with ${tools.pigz ?? 'pigz (not installed)'}`,
  )
  console.log(`  peak: largest RSS in the build (GNU time %M), MB; acbuild: one run`)
  const orDash = (value, format) => (value === undefined ? '-' : format(value))
  console.log(
    table(
      [
        'closure',
        'size',
        'baseline s',
        'zlib s',
        'zlib/base',
        'pigz s',
        'pigz/base',
        'peak zlib',
        'peak pigz',
        'acbuild s',
        'acbuild/base',
      ],
      rows.map((row) => [
        `${row.label} (${row.paths} paths)`,
        formatBytes(row.bytes),
        fixed(1)(row.baseline / 1000),
        orDash(row.zlib, (v) => fixed(1)(v / 1000)),
        orDash(row.zlib, (v) => ratio(v / row.baseline)),
        orDash(row.pigz, (v) => fixed(1)(v / 1000)),
        orDash(row.pigz, (v) => ratio(v / row.baseline)),
        mb(row.zlibPeak),
        mb(row.pigzPeak),
        tools.acbuild ? fixed(1)(row.acbuild / 1000) : 'not installed',
        tools.acbuild ? ratio(row.acbuild / row.baseline) : '-',
      ]),
    ),
  )
  const sizes = rows.map((row) => row.label).join(' / ')
  // The speed targets are for the largest closure; at smaller ones the fixed cost of a build (Nix,
  // Node start, validation) weighs more, so their ratios are shown beside it but not judged.
  const largest = rows.at(-1)
  const ratioCheck = (name, target, label) => {
    const smaller = rows.slice(0, -1).filter((row) => row[name] !== undefined)
    const others = smaller.map((row) => `${row.label}: ${ratio(row[name] / row.baseline)}`)
    checks.push({
      check: `fat native ${label} / tar|gzip -6 <= ${target.toFixed(1)} at ${largest.label}`,
      measured:
        largest[name] === undefined
          ? 'not measured'
          : `${ratio(largest[name] / largest.baseline)}${others.length ? ` (${others.join(', ')})` : ''}`,
      pass: largest[name] === undefined ? undefined : largest[name] / largest.baseline <= target,
    })
  }
  ratioCheck('zlib', TARGET.fatZlib, 'zlib')
  ratioCheck('pigz', TARGET.fatPigz, `pigz (${availableParallelism()} cores)`)

  const peaks = rows.map((row) => Math.max(...[row.zlibPeak, row.pigzPeak].filter((value) => value !== undefined)))
  checks.push({
    check: `fat native peak memory < ${TARGET.peakMB} MB (${sizes})`,
    measured: `${peaks.map(mb).join(' / ')} MB`,
    pass: peaks.every((value) => value < TARGET.peakMB),
  })
  const growth = peaks.length > 1 ? peaks.at(-1) / peaks[0] : undefined
  const within = `within +${Math.round((TARGET.peakGrowth - 1) * 100)}%`
  checks.push({
    check: `fat native peak memory flat: ${growth === undefined ? within : `${rows.at(-1).label} ${within} of ${rows[0].label}`}`,
    measured:
      growth === undefined ? 'needs two sizes' : `${growth >= 1 ? '+' : ''}${Math.round((growth - 1) * 100) || 0}%`,
    pass: growth === undefined ? undefined : growth <= TARGET.peakGrowth,
  })
  return checks
}

function reportTravel(row) {
  console.log(
    `\nExport and import of a thin image: median s of ${row.reps} interleaved runs; baseline = nix-store --export <closure> | nix-store --import`,
  )
  console.log('  floor = two empty Node starts in a pipe, then the baseline; added = export | import - baseline')
  console.log(
    table(
      ['closure', 'paths', 'size', 'into', 'baseline', 'floor', 'export | import', 'added', 'ratio', 'vs floor'],
      [
        ['empty', 'an empty store (judged)'],
        ['this', 'this store, paths present'],
      ].map(([store, into]) => [
        row.label,
        row.paths,
        formatBytes(row.bytes),
        into,
        seconds(row[store].baseline),
        seconds(row[store].floor),
        seconds(row[store].nix2aci),
        `${fixed(2)((row[store].nix2aci - row[store].baseline) / 1000)} s`,
        ratio(row[store].nix2aci / row[store].baseline),
        ratio(row[store].nix2aci / row[store].floor),
      ]),
    ),
  )
  const judged = row.empty.nix2aci / row.empty.baseline
  return [
    {
      check: `nix2aci export | import of ${row.label} into an empty store <= ${TARGET.travelRatio}x nix-store --export | --import`,
      measured: `${ratio(judged)}x`,
      pass: judged <= TARGET.travelRatio,
    },
  ]
}

function reportSummary(checks) {
  console.log('\nSummary')
  console.log(
    table(
      ['target', 'measured', 'result'],
      checks.map(({ check, measured, pass }) => [check, measured, verdict(pass)]),
      3,
    ),
  )
}

// ---- main -----------------------------------------------------------------------------------------

function options() {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, only: { type: 'string' } } })
  if (values.only !== undefined && !['thin', 'fat', 'travel', 'layered'].includes(values.only))
    throw new Error(`--only takes thin, fat, travel or layered, not ${values.only}`)
  return values
}

/** What the bench needs before it starts; a missing piece is a crash with the fix in the message. */
function requirements(only) {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: build it with npm ci (or npm run build)`)
  const needed = [
    'nix-build',
    'nix-env',
    'nix-store',
    'tar',
    'gzip',
    ...(only === 'thin' || only === 'travel' ? [] : [gnuTime]),
  ]
  const missing = needed.filter((command) => !(command.startsWith('/') ? isExecutable(command) : onPath(command)))
  if (missing.length > 0) throw new Error(`not installed: ${missing.join(', ')}`)
}

/**
 * acbuild from ACBUILD, else from PATH. nix2aci finds acbuild on PATH, so ACBUILD's directory is put
 * first on it.
 */
function acbuildToUse() {
  if (!process.env.ACBUILD) return onPath('acbuild')
  const named = resolve(process.env.ACBUILD)
  if (basename(named) !== 'acbuild' || !isExecutable(named))
    throw new Error(`ACBUILD=${process.env.ACBUILD}: not an executable named acbuild`)
  process.env.PATH = `${dirname(named)}${delimiter}${process.env.PATH ?? ''}`
  return named
}

async function main() {
  const { quick, only } = options()
  requirements(only)
  const tools = { acbuild: acbuildToUse(), pigz: onPath('pigz'), bwrap: onPath('bwrap'), actool: onPath('actool') }
  const sizes = plan(quick)
  const started = performance.now()
  console.log(`nix2aci bench${quick ? ' (--quick)' : ''}: ${availableParallelism()} cores, node ${process.version}`)
  console.log(
    `  acbuild: ${tools.acbuild ?? 'not installed'}; pigz: ${tools.pigz ?? 'not installed'}; actool: ${tools.actool ? `${tools.actool} (nix2aci validates every image, as by default)` : 'not installed'}`,
  )
  const checks = []
  const runs = (part) => only === undefined || only === part
  if (runs('thin')) checks.push(...reportThin(await benchThin(sizes.thin, tools), tools))
  if (runs('fat')) checks.push(...reportFat(await benchFat(sizes.fat, tools), tools))
  if (runs('travel')) checks.push(...reportTravel(await benchTravel(sizes.travel)))
  if (runs('layered')) checks.push(...reportLayered(await benchLayered(sizes.layered)))
  reportSummary(checks)
  console.log(`\n(bench took ${seconds(performance.now() - started)})`)
}

try {
  await main()
} catch (error) {
  await new Promise(setImmediate) // a signal that killed a child is noted only now
  process.stderr.write(`bench: ${error instanceof Error ? error.message : error}\n`)
  process.exitCode = stopSignal ? 128 + osConstants.signals[stopSignal] : 1
} finally {
  cleanUp()
}
