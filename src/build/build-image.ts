// One image build, start to finish: Nix facts -> plan -> engine -> validation -> atomic commit.
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises'
import { machine } from 'node:os'
import { join, resolve } from 'node:path'
import type { Compression } from '../aci/compression.js'
import { validateWithActool } from '../aci/actool.js'
import type { EngineChoice } from '../engines/engine.js'
import { writeImage, chooseEngine } from '../engines/select.js'
import { addGcRoot, closureOf, findExecutable, installProfile, requireNix, topLevelEntries } from '../nix/profile.js'
import { defaultExpression } from '../nix/selectors.js'
import { appcArch } from '../plan/appc.js'
import { mountsFileContent } from '../plan/manifest.js'
import { checkImageName, planImage, type ImageKind } from '../plan/plan.js'
import { withCleanup } from '../util/cleanup.js'
import { UserError, messageOf } from '../util/errors.js'
import { displayPath as shown } from '../util/paths.js'

export interface BuildRequest {
  kind: ImageKind
  name: string
  binary: string
  packages: string[]
  outDir: string
  /** `-f`: the Nix expression to take packages from. */
  file?: string
  engine: EngineChoice
  compression: Compression
  resolvConf: boolean
  validate: boolean
}

export interface BuildResult {
  image: string
  kind: ImageKind
  engine: 'acbuild' | 'native'
  size: number
  imageId: string
  mounts: number
  mountsFile: string | null
  gcRoot: string | null
  validated: boolean
  rktCommand: string
}

/** How a build shows what it is doing; the CLI picks a spinner, plain lines or silence. */
export interface Progress {
  step<T>(title: string, work: () => Promise<T>): Promise<T>
}

/** `example.com/etcd` is a valid image name but not a file name. */
export function imageFileBase(name: string): string {
  return name.replaceAll('/', '-')
}

export async function buildImage(request: BuildRequest, progress: Progress): Promise<BuildResult> {
  checkImageName(request.name)
  const engine = await chooseEngine(request.engine)
  await requireNix()
  const outDir = resolve(request.outDir)
  const staging = await makeStagingDir(outDir, request.name)
  const base = join(outDir, imageFileBase(request.name))
  const final = { image: `${base}.aci`, mounts: `${base}.mounts`, gcRoot: `${base}.gcroot` }

  return withCleanup(
    () => rm(staging, { recursive: true, force: true }),
    async () => {
      const expression = defaultExpression(request.file, process.env.NIX_PATH)
      const userEnvironment = await progress.step(`Installing ${request.packages.join(', ')} into the image profile`, () =>
        installProfile(join(staging, 'profile'), request.packages, expression),
      )
      const [execPath, topLevel, closure] = await progress.step('Querying the closure', () =>
        Promise.all([
          findExecutable(userEnvironment, request.binary),
          topLevelEntries(userEnvironment),
          closureOf(userEnvironment),
        ]),
      )
      const plan = planImage(
        { userEnvironment, topLevel, execPath, closure },
        { kind: request.kind, name: request.name, os: 'linux', arch: appcArch(machine()), resolvConf: request.resolvConf },
      )
      const staged = { image: join(staging, 'image.aci'), mounts: join(staging, 'image.mounts') }
      const { imageId } = await progress.step(`Writing the ${request.kind} image (${engine} engine)`, () =>
        writeImage(engine, plan, staged.image, { compression: request.compression, staging }),
      )
      if (plan.volumes.length > 0) await writeFile(staged.mounts, mountsFileContent(plan))
      const validated =
        request.validate &&
        (await progress.step('Validating with actool', () => validateWithActool(staged.image)))

      await progress.step('Saving', async () => {
        if (request.kind === 'thin') await addGcRoot(final.gcRoot, userEnvironment)
        else await rm(final.gcRoot, { force: true })
        await rename(staged.image, final.image)
        if (plan.volumes.length > 0) await rename(staged.mounts, final.mounts)
        else await rm(final.mounts, { force: true })
      })

      const size = (await stat(final.image)).size
      const mountsFile = plan.volumes.length > 0 ? final.mounts : null
      return {
        image: final.image,
        kind: request.kind,
        engine,
        size,
        imageId,
        mounts: plan.mountPoints.length,
        mountsFile,
        gcRoot: request.kind === 'thin' ? final.gcRoot : null,
        validated,
        rktCommand: rktRunCommand(final.image, mountsFile),
      }
    },
  )
}

/** A staging directory beside the outputs, so the final renames are atomic. */
async function makeStagingDir(outDir: string, name: string): Promise<string> {
  try {
    await mkdir(outDir, { recursive: true })
    return await mkdtemp(join(outDir, `.${imageFileBase(name)}.building-`))
  } catch (error) {
    throw new UserError(`cannot write to the output directory ${outDir}: ${messageOf(error)}`)
  }
}

function rktRunCommand(image: string, mountsFile: string | null): string {
  const volumes = mountsFile ? ` $(cat ${shown(mountsFile)})` : ''
  return `sudo rkt run --insecure-options=image${volumes} ${shown(image)}`
}
