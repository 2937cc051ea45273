// Bad input: one clear line on stderr, a non-zero exit, and the output directory as it was.
import { execFileSync, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildJson,
  fixtureEnv,
  makeTempDir,
  mountTmpfs,
  onPath,
  pathWithout,
  repoRoot,
  runCli,
  runCliOnTerminal,
  snapshotDir,
  type CliRun,
  writeShellPackage,
} from './helpers/cli.js'

const out = makeTempDir()
let before: Record<string, string>
beforeAll(() => {
  // An earlier image of the same name, which no failed build may touch.
  buildJson(['thin', 'app', 'hello', 'hello', '--out-dir', out.path, '--engine', 'native'])
  before = snapshotDir(out.path)
})
afterAll(() => out.remove())

function expectCleanFailure(run: CliRun, message: RegExp) {
  expect(run.status).not.toBe(0)
  expect(run.stderr.trim().split('\n')).toHaveLength(1)
  expect(run.stderr).toMatch(message)
  expect(snapshotDir(out.path)).toEqual(before)
}

const thin = (...args: string[]) => runCli(['thin', ...args, '--out-dir', out.path, '--engine', 'native', '--quiet'])

describe('bad input to nix2aci thin', () => {
  it('names close matches for an unknown package', () => {
    expectCleanFailure(thin('app', 'etcd', 'etdc'), /unknown package 'etdc'.*did you mean etcd \(etcd-/)
  })

  it('lists the executables there when the binary is in no package', () => {
    expectCleanFailure(
      thin('app', 'nosuchbinary', 'hello'),
      /binary 'nosuchbinary' is not in .*executables there: bin\/hello/,
    )
  })

  it('refuses an invalid image name before any Nix work, saying the rule', () => {
    const run = runCli(['thin', 'My_App', 'hello', 'hello', '--out-dir', out.path], {
      env: fixtureEnv({ PATH: '/nonexistent' }),
    })
    expect(run.status).toBe(1)
    expect(run.stderr).toMatch(/invalid image name 'My_App': ACIdentifier must contain only lower case/)
  })

  it('says when Nix is not installed', () => {
    const run = runCli(['thin', 'app', 'hello', 'hello', '--out-dir', out.path], {
      env: fixtureEnv({ PATH: '/nonexistent' }),
    })
    expect(run.status).toBe(1)
    expect(run.stderr.trim()).toMatch(/^nix2aci: Nix is not installed .*apt-get install nix-bin$/)
  })

  it('refuses --engine acbuild when acbuild is not installed', () => {
    const scratch = makeTempDir()
    try {
      const run = runCli(['thin', 'app', 'hello', 'hello', '--out-dir', out.path, '--engine', 'acbuild'], {
        env: fixtureEnv({ PATH: pathWithout('acbuild', scratch.path) }),
      })
      expectCleanFailure(run, /acbuild is not installed/)
    } finally {
      scratch.remove()
    }
  })

  it('refuses an output directory it cannot write', () => {
    const dir = makeTempDir()
    const readOnly = join(dir.path, 'ro')
    mkdirSync(readOnly)
    const mounted = mountTmpfs(readOnly, 'ro,size=1m')
    try {
      // Root writes through permission bits, so only a read-only mount (or a file) really refuses.
      const target = mounted ? readOnly : join(out.path, 'app.aci')
      const run = runCli(['thin', 'app', 'hello', 'hello', '--out-dir', target, '--quiet'])
      expectCleanFailure(run, /cannot write to the output directory/)
      if (mounted) expect(readdirSync(readOnly)).toEqual([])
    } finally {
      if (mounted) execFileSync('umount', [readOnly])
      dir.remove()
    }
  })

  it('takes away the output directory it made for a build that failed', () => {
    const dir = makeTempDir()
    try {
      const run = runCli(['thin', 'app', 'nothere', 'hello', '--out-dir', join(dir.path, 'new', 'ACIs'), '--quiet'])
      expect(run.status).toBe(1)
      expect(run.stderr).toMatch(/binary 'nothere' is not in the packages/)
      expect(readdirSync(dir.path)).toEqual([])
    } finally {
      dir.remove()
    }
  })

  it('answers an unknown flag or command with a usage error, not a stack trace', () => {
    const flag = runCli(['thin', 'app', 'hello', 'hello', '--frobnicate'])
    expect(flag.status).toBe(1)
    expect(flag.stderr).toMatch(/Unknown argument: frobnicate/)
    expect(flag.stderr).not.toMatch(/\bat .*\.js:\d+/)
    const choice = runCli(['thin', 'app', 'hello', 'hello', '--engine', 'fast'])
    expect(choice.status).toBe(1)
    expect(choice.stderr).toMatch(/^nix2aci: Invalid values: Argument: engine, Given: "fast", Choices: .*\n$/)
    const command = runCli(['frob'])
    expect(command.status).toBe(1)
    expect(command.stderr).toMatch(/Unknown argument: frob/)
  })

  it('prints the usage of the legacy script for fewer than three arguments', () => {
    // An option's value is not one of the three: `--out-dir DIR app hello` still lacks a package.
    for (const args of [[], ['app', 'hello'], ['--out-dir', out.path, 'app', 'hello']]) {
      const run = runCli(args, { bin: 'buildThinACI' })
      expect(run.status).toBe(1)
      expect(run.stderr.trim()).toBe('Usage: buildThinACI name binary-name package1 [package2 ...]')
    }
  })
})

describe("Nix's own errors, as nix-build shows them", () => {
  const scratch = makeTempDir()
  afterAll(() => scratch.remove())
  /** A package file whose builder runs `script`; `tag` makes it a derivation Nix has not built yet. */
  const shellPackage = (attr: string, name: string, script: string, tag = `${process.pid}-${Date.now()}`) =>
    writeShellPackage(scratch.path, attr, name, `# ${tag}\n${script}`)

  /** The first line is the one-line error; Nix's own account follows it, indented. */
  function expectNixFailure(run: CliRun, headline: RegExp): string[] {
    expect(run.status).toBe(1)
    const [first, ...details] = run.stderr.trimEnd().split('\n')
    expect(first).toMatch(headline)
    for (const line of details) expect(line).toMatch(/^  /)
    expect(snapshotDir(out.path)).toEqual(before)
    return details
  }

  it("shows the builder's last log lines and how to read the whole log", () => {
    const broken = shellPackage('broken', 'broken-1.0', 'for i in $(seq 1 12); do echo "compiling $i"; done; exit 3')
    const details = expectNixFailure(
      thin('app', 'x', 'broken', '-f', broken),
      /^nix2aci: nix-env failed to build broken-1\.0: builder for '\/nix\/store\/[^']*-broken-1\.0\.drv' failed with exit code 3$/,
    )
    expect(details.slice(0, 3)).toEqual(['  last 10 log lines:', '  > compiling 3', '  > compiling 4'])
    expect(details).toContain('  > compiling 12')
    const fullLog = details.at(-1)!.match(/^  For full logs, run '(nix-store -l \/nix\/store\/\S+\.drv)'\.$/)
    expect(fullLog).not.toBeNull()
    const log = execFileSync('sh', ['-c', fullLog![1]!], { encoding: 'utf8' })
    expect(log).toMatch(/^compiling 1\n[^]*compiling 12\n$/)
  })

  it('shows an evaluation error with its position and the source excerpt', () => {
    const file = join(scratch.path, 'undefined.nix')
    writeFileSync(file, '{ app = x; }\n')
    const details = expectNixFailure(
      thin('app', 'x', 'app', '-f', file),
      /^nix2aci: nix-env failed to install the packages: undefined variable 'x'$/,
    )
    expect(details[0]).toBe(`  at ${file}:1:9:`)
    expect(details.slice(1, 3).map((line) => line.trim())).toEqual(['1| { app = x; }', '|         ^'])
  })

  it("streams Nix's output, the builder's included, under --verbose", () => {
    const broken = shellPackage('loud', 'loud-1.0', 'echo "compiling the first part"; echo "cc: fatal" >&2; exit 2')
    const run = runCli(['thin', 'app', 'x', 'loud', '-f', broken, '--out-dir', out.path, '--verbose'])
    expect(run.status).toBe(1)
    const lines = run.stderr.split('\n')
    const headline = lines.findIndex((line) => line.startsWith('nix2aci: '))
    expect(lines[headline]).toMatch(/^nix2aci: nix-env failed to build loud-1\.0: builder for .* exit code 2$/)
    // The log came as Nix printed it, before the error.
    expect(lines.slice(0, headline)).toEqual(expect.arrayContaining(['compiling the first part', 'cc: fatal']))
    expect(lines.slice(0, headline).some((line) => /^building '\/nix\/store\/.*-loud-1\.0\.drv'/.test(line))).toBe(true)
    expect(snapshotDir(out.path)).toEqual(before)
  })

  const slowPackage = () =>
    shellPackage(
      'slow',
      'slow-1.0',
      'sleep 1; mkdir -p $out/bin; printf "#!/bin/sh\\n" > $out/bin/slow; chmod +x $out/bin/slow',
    )

  it('says which derivation it is building, in plain progress lines', () => {
    const dir = makeTempDir()
    try {
      const run = runCli(['thin', 'slow', 'slow', 'slow', '-f', slowPackage(), '--out-dir', dir.path])
      expect(run.status).toBe(0)
      expect(run.stderr).toMatch(/^- Installing slow into the image profile\.\.\.\n  building slow-1\.0\.drv\n/)
    } finally {
      dir.remove()
    }
  })

  it.skipIf(!onPath('script'))('says which derivation it is building, beside the spinner', () => {
    const dir = makeTempDir()
    try {
      const run = runCliOnTerminal(['thin', 'slow', 'slow', 'slow', '-f', slowPackage(), '--out-dir', dir.path], {
        columns: 120,
      })
      expect(run.status).toBe(0)
      const screen = run.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
      expect(screen).toMatch(/Installing slow into the image profile \(building slow-1\.0\.drv\)/)
    } finally {
      dir.remove()
    }
  })

  // Switching to another user (nobody) takes root.
  it.skipIf(process.getuid?.() !== 0 || !onPath('setpriv'))(
    'tells a user who is not root to use root or the nix-daemon',
    () => {
      const home = makeTempDir()
      try {
        chownSync(home.path, 65534, 65534)
        const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath]
        const cli = [join(repoRoot, 'dist/bin/nix2aci.js'), 'thin', 'app', 'hello', 'hello', '--quiet']
        const result = spawnSync('setpriv', [...asNobody, ...cli, '--out-dir', join(home.path, 'ACIs')], {
          cwd: home.path,
          env: fixtureEnv({ HOME: home.path, XDG_CACHE_HOME: join(home.path, '.cache') }),
          encoding: 'utf8',
          timeout: 60_000,
        })
        expect(result.status).toBe(1)
        const [first, ...details] = result.stderr.trimEnd().split('\n')
        expect(first).toMatch(
          /^nix2aci: Nix's store here is root's and no nix-daemon serves uid 65534: run nix2aci as root \(sudo\), or use the nix-daemon/,
        )
        expect(details).toEqual([expect.stringMatching(/^  Nix said: .*\/nix\/var\/nix\/.*Permission denied$/)])
        // Nix makes ~/.nix-defexpr itself; nix2aci leaves no out-dir behind.
        expect(existsSync(join(home.path, 'ACIs'))).toBe(false)
      } finally {
        home.remove()
      }
    },
  )
})
