// The appc image manifest a plan stands for: what the native engine writes, and what acbuild
// must produce from the same plan. Empty lists are left out, as acbuild leaves them out.
import type { ImageManifest } from '../aci/manifest.js'
import type { LayerPlan } from './layers.js'
import type { ImagePlan } from './plan.js'

/** The appc spec version acbuild 0.4.0 declares; both engines must agree on it. */
const AC_VERSION = '0.8.5'

export function imageManifest(plan: ImagePlan): ImageManifest {
  const { app } = plan
  const nonEmpty = <K extends string, T>(key: K, list: T[]) =>
    (list.length > 0 ? { [key]: list } : {}) as Partial<Record<K, T[]>>
  return {
    acKind: 'ImageManifest',
    acVersion: AC_VERSION,
    name: plan.name,
    labels: plan.labels,
    app: {
      exec: app.exec,
      ...nonEmpty('eventHandlers', app.eventHandlers),
      user: app.user,
      group: app.group,
      ...nonEmpty('supplementaryGIDs', app.supplementaryGIDs),
      ...(app.workingDirectory !== undefined ? { workingDirectory: app.workingDirectory } : {}),
      ...nonEmpty('environment', app.environment),
      // acbuild writes readOnly only when it is true.
      ...nonEmpty(
        'mountPoints',
        app.mountPoints.map(({ name, path, readOnly }) => (readOnly ? { name, path, readOnly } : { name, path })),
      ),
      ...nonEmpty('ports', app.ports),
      ...nonEmpty('isolators', app.isolators),
    },
    ...nonEmpty('annotations', plan.annotations),
    ...nonEmpty('dependencies', plan.dependencies),
  }
}

/** A layer's manifest: no app, nothing of the image that asked for it. */
export function layerManifest(layer: LayerPlan): ImageManifest {
  return {
    acKind: 'ImageManifest',
    acVersion: AC_VERSION,
    name: layer.name,
    labels: layer.labels,
    annotations: layer.annotations,
  }
}
