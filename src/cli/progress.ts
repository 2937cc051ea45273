// Progress as the user can see it: an ora spinner on a terminal, plain lines in logs and CI,
// nothing with --quiet. Always on stderr, so stdout stays for results.
import type { Progress } from '../pipeline/build-image.js'

export type ProgressStyle = 'spinner' | 'lines' | 'silent'

export function progressStyle(options: { quiet: boolean; verbose?: boolean }): ProgressStyle {
  if (options.quiet) return 'silent'
  // Under --verbose the tools' own output streams to stderr, where a spinner would redraw over it.
  if (options.verbose) return 'lines'
  // A terminal that reports no width (some pseudo-terminals) cannot redraw a spinner line.
  const terminal = process.stderr.isTTY && (process.stderr.columns ?? 0) > 0
  return terminal && !inCI() ? 'spinner' : 'lines'
}

/** CI as CI services set it: `CI=false` or `CI=0` (a developer switching it off) is not CI. */
function inCI(): boolean {
  return !['', '0', 'false'].includes((process.env.CI ?? '').trim().toLowerCase())
}

/**
 * `label` prefixes each line, for builds that run side by side (where spinners would collide);
 * `verbose` passes the tools' own output through.
 */
export function createProgress(style: ProgressStyle, label?: string, options: { verbose?: boolean } = {}): Progress {
  if (style === 'silent') return { step: (_title, work) => work(), update: () => {} }
  const prefix = label ? `[${label}] ` : ''
  const output = options.verbose ? (line: string) => void process.stderr.write(`${prefix}${line}\n`) : undefined
  if (style === 'lines' || label !== undefined) {
    return {
      step: (title, work) => lineStep(title, work, label),
      update: (detail) => void process.stderr.write(`${prefix}  ${detail}\n`),
      output,
    }
  }
  return spinnerProgress()
}

function elapsed(since: number): string {
  const ms = performance.now() - since
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`
}

async function lineStep<T>(title: string, work: () => Promise<T>, label?: string): Promise<T> {
  const started = performance.now()
  const prefix = label ? `[${label}] ` : ''
  process.stderr.write(`${prefix}- ${title}...\n`)
  const result = await work()
  process.stderr.write(`${prefix}  done: ${title} (${elapsed(started)})\n`)
  return result
}

/** One spinner per step; an update redraws the running one's text, or waits for it to start. */
function spinnerProgress(): Progress {
  let detail: string | undefined
  let redraw = () => {}
  const spinnerStep = async <T>(title: string, work: () => Promise<T>): Promise<T> => {
    const started = performance.now()
    detail = undefined
    const text = () => (detail === undefined ? title : `${title} (${detail})`)
    // The work starts first; ora, loaded only where a spinner is drawn, loads while it runs.
    const working = work()
    working.catch(() => undefined) // handed to ora below; a failure before ora has loaded is not unhandled
    const ora = await import('ora').catch(() => undefined)
    // Without ora the step must still wait for its work: a cleanup must never race a running nix-env.
    if (!ora) return lineStep(title, () => working)
    try {
      return await ora.oraPromise(
        (spinner) => {
          redraw = () => void (spinner.text = text())
          redraw()
          return working
        },
        {
          text: text(),
          stream: process.stderr,
          // ora would put the terminal in raw mode, where Ctrl-C is a keypress instead of SIGINT.
          discardStdin: false,
          successText: () => `${title} (${elapsed(started)})`,
          failText: title,
        },
      )
    } finally {
      redraw = () => {}
    }
  }
  return {
    step: spinnerStep,
    update: (next) => {
      detail = next
      redraw()
    },
  }
}
