// main's skipHelpCaching reaches into yargs 17's internals: these tests fail if what it relies on
// moves, and show, by counting renders, that nix2aci renders no help text for a command it runs.
import { describe, expect, it } from 'vitest'
import yargs, { type Argv } from 'yargs'
import { createNix2aciParser } from '../../src/cli/main.js'

interface UsageInstance {
  help(): string
  cacheHelpMessage(): void
  hasCachedHelpMessage(): boolean
}

function usageOf(cli: Argv<unknown>): UsageInstance {
  return (cli as unknown as { getInternalMethods(): { getUsageInstance(): UsageInstance } })
    .getInternalMethods()
    .getUsageInstance()
}

/** Counts the help texts the parser renders from now on. */
function countRenders(cli: Argv<unknown>): () => number {
  const usage = usageOf(cli)
  const render = usage.help
  let renders = 0
  usage.help = function (this: UsageInstance) {
    renders++
    return render.call(this)
  }
  return () => renders
}

describe('help caching', () => {
  it("is how yargs renders a command's help after calling its handler", async () => {
    const cli = yargs(['go']).command('go', 'a command', {}, () => {})
    expect(typeof usageOf(cli).cacheHelpMessage).toBe('function')
    const renders = countRenders(cli)
    await cli.parseAsync()
    expect(renders()).toBe(1)
    expect(usageOf(cli).hasCachedHelpMessage()).toBe(true)
  })

  it('is skipped by nix2aci: running a command renders no help', async () => {
    const cli = createNix2aciParser(['inspect', '/nonexistent.aci'], new AbortController().signal)
    const renders = countRenders(cli)
    // The handler ran: the error is inspect's own, not the parser's.
    await expect(cli.parseAsync()).rejects.toThrow(/nonexistent\.aci/)
    expect(renders()).toBe(0)
    expect(usageOf(cli).hasCachedHelpMessage()).toBe(false)
  })
})
