// What /proc says about processes, for tests that prove nothing outlives a build or a run.
import { readdirSync, readFileSync } from 'node:fs'

export interface ProcessStat {
  pid: number
  command: string
  /** One letter: R running, S sleeping, Z zombie, ... */
  state: string
  parent: number
  group: number
}

/** A process's command name, state, parent and process group, or undefined once it is gone. */
export function processStat(pid: number): ProcessStat | undefined {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // pid (command) state ppid pgrp ...; the command may itself hold spaces or parentheses.
  const command = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
  const [state, parent, group] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { pid, command, state: state!, parent: Number(parent), group: Number(group) }
}

/** Whether `pid` has exited: gone, or a zombie its parent has not reaped yet. */
export function hasExited(pid: number): boolean {
  const stat = processStat(pid)
  return stat === undefined || stat.state === 'Z'
}

/** Every process that has not exited. */
export function liveProcesses(): ProcessStat[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .flatMap((entry) => {
      const stat = processStat(Number(entry))
      return stat === undefined || stat.state === 'Z' ? [] : [stat]
    })
}

/** A process's command line; empty once it is gone. */
export function commandLine(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
  } catch {
    return []
  }
}

/** The live children of `parent` running `command` (e.g. the nix-env a build started). */
export function childrenRunning(parent: number, command: string): number[] {
  return liveProcesses()
    .filter((p) => p.command === command && p.parent === parent)
    .map((p) => p.pid)
}
