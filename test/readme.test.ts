// The README's examples, read out of README.md and run as written, so the README cannot drift
// from what works.
import { execFileSync } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runAci } from './harness/run-aci.js'
import { actoolValidate, repoRoot } from './helpers/cli.js'

function readmeBlock(marker: string): string {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8')
  const match = new RegExp(`<!-- readme-test: ${marker} -->\\n\`\`\`sh\\n([\\s\\S]*?)\`\`\``).exec(readme)
  if (!match) throw new Error(`README.md has no block marked ${marker}`)
  return match[1]!
}

const acis = join(repoRoot, 'ACIs')
afterAll(() => rmSync(acis, { recursive: true, force: true }))

describe('README examples', () => {
  it('run as typed and build images that pass actool and run', async () => {
    const block = readmeBlock('examples')
    expect(block).toContain('./buildThinACI go1.5-etcd-v2.1.2 etcd etcd')
    expect(block).toContain('./buildThinACI bbpython35 sh busybox python35')
    rmSync(acis, { recursive: true, force: true })
    execFileSync('bash', ['-e', '-c', block], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] })

    for (const name of ['go1.5-etcd-v2.1.2', 'bbpython35', 'hello-fat']) {
      expect(actoolValidate(join(acis, `${name}.aci`)).status, name).toBe(0)
    }
    const etcd = await runAci(join(acis, 'go1.5-etcd-v2.1.2.aci'), {
      mounts: join(acis, 'go1.5-etcd-v2.1.2.mounts'),
      args: ['--version'],
    })
    expect(etcd.stdout).toMatch(/etcd Version: 3\./)
    const python = await runAci(join(acis, 'bbpython35.aci'), {
      mounts: join(acis, 'bbpython35.mounts'),
      args: ['-c', 'python3 -c "import json; print(json.dumps([1]))"'],
    })
    expect(python.stdout.trim()).toBe('[1]')
    const hello = await runAci(join(acis, 'hello-fat.aci'), { mounts: join(acis, 'hello-fat.mounts') })
    expect(hello.stdout.trim()).toBe('Hello, world!')
  })
})
