// How long a command line may be: what Linux's execve accepts before it fails with E2BIG.
import { readFileSync } from 'node:fs'

/** Linux's floor for arguments and environment together, whatever the stack limit: 32 pages. */
const ARG_MAX_FLOOR = 32 * 4096
/** Three quarters of the kernel's 8 MiB stack limit (_STK_LIM): the ceiling, however large the stack may grow. */
const ARG_MAX_CEILING = 6 * 1024 * 1024

/**
 * The bytes execve allows for arguments and environment in a process started from here: a quarter
 * of the stack's soft limit, within Linux's floor and ceiling (fs/exec.c); `getconf ARG_MAX` says the same.
 */
export function commandLineLimit(): number {
  const limits = readFileSync('/proc/self/limits', 'utf8')
  const soft = /^Max stack size\s+(\S+)/m.exec(limits)?.[1]
  const quarter = soft === undefined || soft === 'unlimited' ? Infinity : Number(soft) / 4
  return Math.max(ARG_MAX_FLOOR, Math.min(ARG_MAX_CEILING, quarter))
}

/** What `argv` and `env` take of that limit: each string with its NUL, and a pointer to it. */
export function commandLineSize(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): number {
  const strings = [...argv, ...Object.entries(env).map(([name, value]) => `${name}=${value ?? ''}`)]
  return strings.reduce((total, text) => total + Buffer.byteLength(text) + 1 + 8, 0)
}
