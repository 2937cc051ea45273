// Progress people can see, output scripts can parse: spinner on a terminal, plain lines in logs and
// CI, nothing but the JSON object on stdout with --json.
import { afterAll, describe, expect, it } from 'vitest'
import { makeTempDir, onPath, runCli, runCliOnTerminal } from './helpers/cli.js'

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

describe('progress on a terminal that reports no width', () => {
  it.skipIf(!onPath('script'))('falls back to plain lines instead of redrawing forever', () => {
    const run = runCliOnTerminal(build)
    expect(run.status).toBe(0)
    expect(run.stdout).toContain('- Installing hello into the image profile...')
  })
})
