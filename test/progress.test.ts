// Progress people can see, output scripts can parse: spinner on a terminal, plain lines in logs and
// CI, nothing but the JSON object on stdout with --json.
import { afterAll, describe, expect, it } from 'vitest'
import { fixtureEnv, makeTempDir, onPath, pathWithout, runCli, runCliOnTerminal } from './helpers/cli.js'
import { startOnTerminal } from './helpers/terminal.js'

const out = makeTempDir()
afterAll(() => out.remove())
const build = ['thin', 'progress', 'hello', 'hello', '--out-dir', out.path, '--engine', 'native']

describe('progress and output', () => {
  it('prints plain step lines on stderr when not on a terminal', () => {
    const run = runCli(build)
    expect(run.status).toBe(0)
    expect(run.stderr).toMatch(/^- Installing hello into the image profile\.\.\.\n/)
    expect(run.stderr).toMatch(/done: Validating with actool \(\d+ ms\)/)
    expect(run.stdout).toMatch(/^Built .*progress\.aci/)
  })

  it('prints exactly one JSON object on stdout with --json, and nothing with --quiet', () => {
    const json = runCli([...build, '--json'])
    expect(json.stdout.trim().split('\n')).toHaveLength(1)
    expect(JSON.parse(json.stdout)).toMatchObject({ kind: 'thin', engine: 'native' })
    const quiet = runCli([...build, '--quiet'])
    expect(quiet).toMatchObject({ status: 0, stdout: '', stderr: '' })
  })

  it.skipIf(!onPath('script'))('draws a spinner on a terminal', () => {
    const run = runCliOnTerminal(build, { columns: 100 })
    expect(run.status).toBe(0)
    const screen = run.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    expect(screen).toMatch(/✔ Installing hello into the image profile \(\d+ ms\)/)
  })
})

describe('progress where CI is switched off', () => {
  it.skipIf(!onPath('python3'))('draws a spinner on a terminal with CI=false', async () => {
    const terminal = await startOnTerminal(build, { CI: 'false' })
    const { code, screen } = await terminal.exited
    expect(code).toBe(0)
    expect(screen.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')).toMatch(/✔ Installing hello into the image profile/)
  })
})

describe('progress without actool', () => {
  it('shows no validation step, since none runs', () => {
    const run = runCli(build, { env: fixtureEnv({ PATH: pathWithout('actool', out.path) }) })
    expect(run.status).toBe(0)
    expect(run.stderr).toContain('Installing hello')
    expect(run.stderr).not.toContain('Validating')
  })
})

describe('progress on a terminal that reports no width', () => {
  it.skipIf(!onPath('script'))('falls back to plain lines instead of redrawing forever', () => {
    const run = runCliOnTerminal(build)
    expect(run.status).toBe(0)
    expect(run.stdout).toContain('- Installing hello into the image profile...')
  })
})
