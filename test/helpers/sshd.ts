// A real sshd on 127.0.0.1 inside a network namespace of the test's own (never any other address),
// with throwaway host and client keys, for commands that reach "another host" over SSH. The client
// is given everything on its command line: nothing in ~/.ssh is read or written.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeTempDir, onPath } from './cli.js'
import { pollFor } from './wait.js'

/** sshd re-executes itself, so it is started by its absolute path (Debian's openssh-server). */
const SSHD = '/usr/sbin/sshd'
/** Any port is free in a namespace of our own; not 22, so a client that ignores the options misses it. */
const PORT = 2222

/** Why sshd tests cannot run here, or undefined when they can. */
export const noLoopbackSshd =
  process.getuid?.() !== 0
    ? 'network namespaces need root'
    : !existsSync(SSHD)
      ? `no ${SSHD} (openssh-server)`
      : ['unshare', 'nsenter', 'ssh', 'ssh-keygen'].find((tool) => !onPath(tool))

export interface LoopbackSshd {
  /** root@127.0.0.1: the address inside the namespace. */
  host: string
  /** ssh options that reach it (port, client key, no host key checks, no ~/.ssh/config), as NIX_SSHOPTS takes them. */
  sshOptions: string
  /** Runs `argv` inside the namespace, where 127.0.0.1 is this sshd. */
  run(argv: string[], options?: { env?: NodeJS.ProcessEnv }): SpawnSyncReturns<string>
  /** Stops sshd (its namespace goes with it) and deletes the keys. */
  stop(): Promise<void>
}

/** Starts sshd; its sessions get `sessionEnv` (sshd_config SetEnv), e.g. a store of their own. */
export async function startLoopbackSshd(sessionEnv: Record<string, string> = {}): Promise<LoopbackSshd> {
  const dir = makeTempDir('nix2aci-sshd-')
  const file = (name: string) => join(dir.path, name)
  for (const key of ['host_key', 'client_key'])
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'nix2aci test', '-f', file(key)])
  writeFileSync(file('authorized_keys'), readFileSync(file('client_key.pub')))
  const setEnv = Object.entries(sessionEnv).map(([name, value]) => `SetEnv ${name}=${value}\n`)
  writeFileSync(
    file('sshd_config'),
    [
      `ListenAddress 127.0.0.1\nPort ${PORT}\nHostKey ${file('host_key')}\nPidFile none\n`,
      `AuthorizedKeysFile ${file('authorized_keys')}\nStrictModes no\n`,
      ...setEnv,
    ].join(''),
  )
  // sshd needs its privilege separation directory, /run/sshd: a private /run in a mount namespace of its own.
  const body = 'ip link set lo up && mount -t tmpfs tmpfs /run && mkdir /run/sshd && exec "$0" -D -f "$1" -E "$2"'
  const sshd = spawn('unshare', ['-n', '-m', 'sh', '-c', body, SSHD, file('sshd_config'), file('sshd.log')], {
    stdio: 'ignore',
  })
  const exited = new Promise<void>((resolve) => sshd.once('exit', () => resolve()))
  const log = () => (existsSync(file('sshd.log')) ? readFileSync(file('sshd.log'), 'utf8') : '')
  try {
    await pollFor(`sshd listening on 127.0.0.1:${PORT}`, 10_000, () =>
      sshd.exitCode !== null
        ? Promise.reject(new Error(`sshd exited ${sshd.exitCode}: ${log()}`))
        : log().includes('Server listening') || undefined,
    )
  } catch (error) {
    sshd.kill()
    await exited
    dir.remove()
    throw error
  }
  return {
    host: 'root@127.0.0.1',
    sshOptions: [
      ...['-F', '/dev/null', '-p', String(PORT), '-i', file('client_key')],
      ...['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes'],
      ...['-o', 'LogLevel=ERROR'],
    ].join(' '),
    run: (argv, options = {}) =>
      spawnSync('nsenter', [`--net=/proc/${sshd.pid}/ns/net`, ...argv], {
        env: options.env ?? process.env,
        encoding: 'utf8',
        timeout: 120_000,
      }),
    async stop() {
      sshd.kill()
      await exited
      dir.remove()
    },
  }
}
