// The command line itself: help, usage, typos and shell completion, as a user meets them.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { fixtureEnv, makeTempDir, onPath, repoRoot, runCli } from './helpers/cli.js'

const scratch = makeTempDir()
afterAll(() => scratch.remove())

describe('help', () => {
  it.each(['buildThinACI', 'buildFatACI'] as const)('of %s shows its own command line and options', (bin) => {
    for (const flag of ['--help', '-h']) {
      const run = runCli([flag], { bin })
      expect(run.status).toBe(0)
      expect(run.stderr).toBe('')
      expect(run.stdout.split('\n')[0]).toBe(`Usage: ${bin} name binary-name package1 [package2 ...]`)
      expect(run.stdout).toContain('--out-dir')
      expect(run.stdout).toContain('--exec')
      // Following the help must not build an image named after the nix2aci command.
      expect(run.stdout).not.toMatch(/\b(thin|fat) <name>/)
    }
  })

  it('is -h as well as --help, and `nix2aci help [command]`', () => {
    const overall = runCli(['--help'])
    expect(overall.status).toBe(0)
    expect(overall.stdout).toMatch(/^nix2aci <command> \[options\]/)
    expect(runCli(['-h']).stdout).toBe(overall.stdout)
    expect(runCli(['help']).stdout).toBe(overall.stdout)

    const thin = runCli(['thin', '--help'])
    expect(thin.stdout).toMatch(/^nix2aci thin <name> <binary> \[packages\.\.\]/)
    for (const args of [
      ['help', 'thin'],
      ['thin', '-h'],
    ]) {
      const run = runCli(args)
      expect(run.status).toBe(0)
      expect(run.stdout).toBe(thin.stdout)
    }
  })
})

describe('a typo', () => {
  it('in a command gets the closest command, in one line', () => {
    for (const args of [
      ['thn', 'app', 'hello', 'hello'],
      ['help', 'thn'],
    ]) {
      const run = runCli(args)
      expect(run.status).toBe(1)
      expect(run.stdout).toBe('')
      expect(run.stderr).toBe('nix2aci: Unknown argument: thn (did you mean thin?)\n')
    }
    expect(runCli(['biuld']).stderr).toBe('nix2aci: Unknown argument: biuld (did you mean build?)\n')
  })

  it("in an option gets the closest of the command's options, once", () => {
    const global = runCli(['thin', 'app', 'hello', 'hello', '--out-dri', '/tmp/nowhere'])
    expect(global.status).toBe(1)
    expect(global.stderr).toBe('nix2aci: Unknown argument: out-dri (did you mean --out-dir?)\n')
    const own = runCli(['thin', 'app', 'hello', 'hello', '--imagee-version', '1'])
    expect(own.stderr).toBe('nix2aci: Unknown argument: imagee-version (did you mean --image-version?)\n')
    const legacy = runCli(['app', 'hello', 'hello', '--engin', 'native'], { bin: 'buildThinACI' })
    expect(legacy.status).toBe(1)
    expect(legacy.stderr).toBe('buildThinACI: Unknown argument: engin (did you mean --engine?)\n')
  })

  it('far from every name gets no guess', () => {
    const run = runCli(['thin', 'app', 'hello', 'hello', '--frobnicate'])
    expect(run.stderr).toBe('nix2aci: Unknown argument: frobnicate\n')
  })
})

describe('nix2aci completion', () => {
  it('prints a bash completion script', () => {
    const run = runCli(['completion'])
    expect(run.status).toBe(0)
    expect(run.stdout).toContain('complete -o bashdefault -o default -F _nix2aci_yargs_completions nix2aci')
  })

  it.skipIf(!onPath('bash'))('that completes commands and options in bash', () => {
    const complete = (words: string[]) => {
      const script = [
        'source <(nix2aci completion)',
        `COMP_WORDS=(${words.map((word) => `'${word}'`).join(' ')})`,
        'COMP_CWORD=$((${#COMP_WORDS[@]} - 1))',
        '_nix2aci_yargs_completions',
        'printf "%s\\n" "${COMPREPLY[@]}"',
      ].join('\n')
      // The script calls `nix2aci` by name: the checkout's own, as on an installed PATH.
      const env = fixtureEnv({ PATH: `${repoRoot}:${process.env.PATH}` })
      const run = spawnSync('bash', ['-c', script], { env, encoding: 'utf8' })
      expect(run.stderr).toBe('')
      return run.stdout.trim().split('\n')
    }
    expect(complete(['nix2aci', 'th'])).toEqual(['thin'])
    expect(complete(['nix2aci', 'thin', '--image-v'])).toEqual(['--image-version'])
  })
})

describe('--json', () => {
  it('of a single build that fails prints nothing on stdout and one line on stderr', () => {
    for (const args of [
      ['thin', 'app', 'nothere', 'hello'],
      ['thin', 'Not A Name', 'hello', 'hello'],
      ['fat', 'app', 'hello', 'hello', '--out-dri', '/tmp/nowhere'],
    ]) {
      const run = runCli(['--json', '--out-dir', join(scratch.path, 'out'), ...args])
      expect(run.status).toBe(1)
      expect(run.stdout).toBe('')
      expect(run.stderr).toMatch(/^nix2aci: [^\n]+\n$/)
    }
  })
})
