// bwrap runs detached, in a process group of its own: the app is stopped, and waited for, as that group.
import type { ChildProcess } from 'node:child_process'
import { liveProcesses } from '../helpers/proc.js'
import { pollFor } from '../helpers/wait.js'

// Apps still running when the test process exits are killed with it.
const live = new Set<ChildProcess>()
process.once('exit', () => live.forEach((child) => killGroup(child, 'SIGKILL')))

/** Kills `child`'s group should the test process exit first; `release` once it is gone. */
export function killOnExit(child: ChildProcess): { release(): void } {
  live.add(child)
  return { release: () => live.delete(child) }
}

/**
 * Signals bwrap's process group: bwrap, its pid-namespace init and the app; what escaped the
 * group dies with the namespace when --die-with-parent kills the init.
 */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal)
  } catch {
    // already exited
  }
}

/**
 * Processes of a process group that have not exited. Zombies do not count: bwrap exits as soon as
 * its pid-namespace init reports, leaving the init to PID 1, which may reap it only much later.
 */
export function runningInGroup(pgid: number): number[] {
  return liveProcesses()
    .filter((p) => p.group === pgid)
    .map((p) => p.pid)
}

/**
 * Waits until bwrap's group has no running process, as `rkt run` returns only once stage1 is gone:
 * bwrap can exit while its pid-namespace init is still tearing the namespace down. What is left
 * after `graceMs` gets SIGKILL.
 */
export async function groupGone(child: ChildProcess, graceMs = 2_000): Promise<void> {
  const empty = () => (runningInGroup(child.pid!).length === 0 ? true : undefined)
  try {
    await pollFor("bwrap's process group not gone", graceMs, empty)
  } catch {
    killGroup(child, 'SIGKILL')
    await pollFor("bwrap's process group not gone after SIGKILL", 10_000, empty)
  }
}
