// The appc image manifest a plan stands for: what the native engine writes, and what acbuild
// must produce from the same plan.
import type { ImagePlan, Label, MountPoint } from './plan.js'

/** The appc spec version acbuild 0.4.0 declares; both engines must agree on it. */
export const AC_VERSION = '0.8.5'

export interface ImageManifest {
  acKind: 'ImageManifest'
  acVersion: string
  name: string
  labels: Label[]
  app: {
    exec: string[]
    user: string
    group: string
    mountPoints?: MountPoint[]
  }
}

export function imageManifest(plan: ImagePlan): ImageManifest {
  return {
    acKind: 'ImageManifest',
    acVersion: AC_VERSION,
    name: plan.name,
    labels: plan.labels,
    app: {
      exec: plan.exec,
      // acbuild sets root when it creates the app section; rkt needs both.
      user: '0',
      group: '0',
      ...(plan.mountPoints.length > 0 ? { mountPoints: plan.mountPoints } : {}),
    },
  }
}

/** The `.mounts` file: rkt run arguments for every host volume, on one line. */
export function mountsFileContent(plan: ImagePlan): string {
  const args = plan.volumes.map(
    (v) => `--volume=${v.name},kind=host,source=${v.source}${v.readOnly ? ',readOnly=true' : ''}`,
  )
  return `${args.join(' ')}\n`
}
