// rkt's own directory (`rkt --dir`), taken away safely after a test that ran real rkt.
import { execFileSync, spawnSync } from 'node:child_process'
import { rmSync } from 'node:fs'

/**
 * The fly stage1 leaves its pods' bind mounts (the host's /dev among them) under rkt's dir until gc:
 * deleting under them would delete on the host. So: gc first, and remove nothing while a mount is left.
 */
export function removeRktDir(dir: string, rkt = 'rkt'): void {
  spawnSync(rkt, [`--dir=${dir}`, 'gc', '--grace-period=0s'])
  const mounted = execFileSync('findmnt', ['-rn', '-o', 'TARGET'], { encoding: 'utf8' })
    .split('\n')
    .filter((target) => target === dir || target.startsWith(`${dir}/`))
  if (mounted.length > 0) throw new Error(`rkt gc left ${mounted.length} mounts under ${dir}; not removed`)
  rmSync(dir, { recursive: true, force: true })
}
