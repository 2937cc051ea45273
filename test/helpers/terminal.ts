// A real terminal for the CLI: a pseudo-terminal (python3's pty module) whose keys the test types,
// so Ctrl-C goes through the terminal's line discipline as it does for a person at a keyboard.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fixtureEnv, repoRoot } from './cli.js'

/**
 * Forks the command onto a new pty (100 columns, so a spinner is drawn), forwards our stdin to
 * the terminal as keys, copies the screen to our stdout, and exits as the command did (128 + n
 * when a signal killed it). The command's pid is the first line on stderr.
 */
const PTY_SCRIPT = `
import fcntl, os, pty, select, struct, sys, termios
pid, master = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', 30, 100, 0, 0))
    os.execv(sys.argv[1], sys.argv[1:])
sys.stderr.write(f'{pid}\\n')
sys.stderr.flush()
inputs = [master, 0]
while True:
    ready = select.select(inputs, [], [])[0]
    if 0 in ready:
        keys = os.read(0, 1024)
        if keys:
            os.write(master, keys)
        else:
            inputs.remove(0)
    if master in ready:
        try:
            screen = os.read(master, 65536)
        except OSError:  # EIO: nothing holds the terminal any more
            break
        if not screen:
            break
        sys.stdout.buffer.write(screen)
        sys.stdout.flush()
status = os.waitpid(pid, 0)[1]
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
`

export interface TerminalSession {
  /** The CLI's own pid (the pty's session leader). */
  pid: number
  /** Types `keys` on the terminal: "\x03" is Ctrl-C. */
  type(keys: string): void
  /** What the terminal has shown so far. */
  screen(): string
  /** Closes the terminal, as closing its window does: the kernel sends SIGHUP to the command. */
  close(): void
  /** The exit code and everything the terminal showed. */
  exited: Promise<{ code: number | null; screen: string }>
}

/**
 * Starts nix2aci on a terminal of its own, as a person would: stdin and stderr a tty, CI unset
 * unless `extraEnv` sets it.
 */
export async function startOnTerminal(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<TerminalSession> {
  const { CI: _ci, ...env } = fixtureEnv()
  Object.assign(env, extraEnv)
  const child = spawn('python3', ['-c', PTY_SCRIPT, process.execPath, join(repoRoot, 'dist/bin/nix2aci.js'), ...args], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let screen = ''
  child.stdout.on('data', (chunk: Buffer) => (screen += chunk.toString()))
  const exited = new Promise<{ code: number | null; screen: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, screen })),
  )
  let stderr = ''
  const pid = await new Promise<number>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
      const line = /^(\d+)\n/.exec(stderr)
      if (line) resolve(Number(line[1]))
    })
    child.on('close', (code) => reject(new Error(`the pty helper exited (${code}): ${stderr}`)))
  })
  return {
    pid,
    type: (keys) => child.stdin.write(keys),
    screen: () => screen,
    // The helper holds the pty's only master: when it dies, the terminal hangs up.
    close: () => child.kill('SIGKILL'),
    exited,
  }
}
