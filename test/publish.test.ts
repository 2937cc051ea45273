// nix2aci publish: the tree it writes is found by actool discover and fetched by the real rkt, by name,
// from a loopback web server inside a network namespace of the test's own (never any other address).
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { buildJson, fixtureEnv, makeTempDir, onPath, runCli } from './helpers/cli.js'
import { removeRktDir } from './helpers/rkt.js'
import { makeThrowawayKey } from './helpers/gpg.js'

const key = makeThrowawayKey('nix2aci publish test <publish@nix2aci.invalid>', 'rsa2048')
const out = makeTempDir('nix2aci-publish-')
const env = fixtureEnv({ GNUPGHOME: key.home })
afterAll(() => {
  key.remove()
  out.remove()
})

const canServe = process.getuid?.() === 0 && onPath('unshare') && onPath('python3')
const rkt = spawnSync('sh', ['-c', 'command -v rkt'], { encoding: 'utf8' }).stdout.trim()
const stage1 = rkt ? join(dirname(rkt), 'stage1-fly.aci') : ''

/** Runs `script` (bash) with `served` on http://localhost/ inside a fresh network namespace. */
function withServer(served: string, script: string, args: string[] = []) {
  const body = [
    'ip link set lo up',
    `python3 -m http.server 80 --bind 127.0.0.1 --directory "$SERVED" >/dev/null 2>&1 &`,
    'server=$!',
    'trap "kill $server" EXIT',
    'for i in $(seq 100); do (echo >/dev/tcp/127.0.0.1/80) 2>/dev/null && break; sleep 0.1; done',
    script,
  ].join('\n')
  return spawnSync('timeout', ['120', 'unshare', '-n', 'bash', '-e', '-c', body, 'bash', ...args], {
    env: { ...env, SERVED: served },
    encoding: 'utf8',
  })
}

/** Publishes `image` into a fresh tree, then rkt trusts the key, fetches the image by name and runs it. */
function fetchAndRunWithRkt(image: string, nameAndVersion: string) {
  const served = makeTempDir('nix2aci-served-')
  const rktDir = makeTempDir('nix2aci-rkt-')
  try {
    const published = runCli(
      ['publish', image, '--to', join(served.path, 'apps'), '--url-prefix', 'http://localhost/apps'],
      {
        env,
      },
    )
    expect(published.status, published.stderr).toBe(0)
    const mounts = readFileSync(image.replace(/\.aci$/, '.mounts'), 'utf8').trim()
    return withServer(
      served.path,
      [
        `rkt --dir="$1" trust --insecure-allow-http --skip-fingerprint-review --prefix localhost/apps http://localhost/apps/pubkeys.gpg`,
        'rkt --dir="$1" --insecure-options=http fetch "$3"',
        // The image and its layers are verified by the fetch above; the stage1 beside rkt has no signature.
        `rkt --dir="$1" --insecure-options=http,image run --stage1-path="$2" ${mounts} "$3"`,
        'rkt --dir="$1" image list --no-legend --fields=name',
      ].join('\n'),
      [rktDir.path, stage1, nameAndVersion],
    )
  } finally {
    served.remove()
    removeRktDir(rktDir.path, rkt)
  }
}

const build = (name: string, extra: string[]) =>
  buildJson(['fat', name, 'hello', 'hello', '--out-dir', out.path, ...extra], { env })

describe('publish', () => {
  const signed = build('localhost/apps/hello', ['--image-version', '1.0', '--sign', '--key', key.fingerprint])

  it.skipIf(!canServe)('writes a tree actool discover finds the image, signature and key in', () => {
    const served = join(out.path, 'served')
    const result = runCli(
      ['publish', signed.image, '--to', join(served, 'apps'), '--url-prefix', 'http://localhost/apps'],
      { env },
    )
    expect(result.status, result.stderr).toBe(0)
    expect(result.stdout).toContain(
      'published localhost/apps/hello:1.0 at http://localhost/apps/hello-1.0-linux-amd64.aci',
    )
    expect(readFileSync(join(served, 'apps', 'hello-1.0-linux-amd64.aci'))).toEqual(readFileSync(signed.image))
    const found = withServer(served, 'actool discover --insecure --json localhost/apps/hello:1.0')
    expect(found.status, found.stderr).toBe(0)
    expect(JSON.parse(found.stdout)).toMatchObject({
      ACIEndpoints: [
        {
          ACI: 'http://localhost/apps/hello-1.0-linux-amd64.aci',
          ASC: 'http://localhost/apps/hello-1.0-linux-amd64.aci.asc',
        },
      ],
      PublicKeys: ['http://localhost/apps/pubkeys.gpg'],
    })
    // Publishing again adds: the first image stays, the page lists both.
    const next = build('localhost/apps/hello-next', ['--image-version', '1.1', '--sign', '--key', key.fingerprint])
    const again = runCli(
      ['publish', next.image, '--to', join(served, 'apps'), '--url-prefix', 'http://localhost/apps'],
      {
        env,
      },
    )
    expect(again.status, again.stderr).toBe(0)
    const both = withServer(
      served,
      'actool discover --insecure --json localhost/apps/hello:1.0 && actool discover --insecure --json localhost/apps/hello-next:1.1',
    )
    expect(both.status, both.stderr).toBe(0)
    expect(both.stdout).toContain('http://localhost/apps/hello-next-1.1-linux-amd64.aci.asc')
    const page = readFileSync(join(served, 'apps', 'index.html'), 'utf8')
    expect(page).toContain('>hello-1.0-linux-amd64.aci</a>')
    expect(page).toContain('>hello-next-1.1-linux-amd64.aci</a>')
  })

  it('refuses an image without a version label, or outside the prefix, or its layers, in one line, writing nothing', () => {
    const unversioned = build('localhost/apps/unversioned', [])
    const defaultLayers = buildJson(
      ['layered', 'localhost/apps/default-layers', 'hello', 'hello', '--out-dir', out.path, '--image-version', '1'],
      { env },
    )
    const to = join(out.path, 'refused')
    for (const [image, prefix, message] of [
      [
        unversioned.image,
        'http://localhost/apps',
        /^nix2aci: image localhost\/apps\/unversioned .* has no version label/,
      ],
      [
        signed.image,
        'http://localhost/other',
        /^nix2aci: image localhost\/apps\/hello is not under the published prefix localhost\/other\//,
      ],
      [
        defaultLayers.image,
        'http://localhost/apps',
        /^nix2aci: layer nix2aci\.invalid\/store\/\S+ is not under the published prefix localhost\/apps\/ \(build with --layer-prefix localhost\/apps\/layers\)$/m,
      ],
    ] as const) {
      const result = runCli(['publish', signed.image, image, '--to', to, '--url-prefix', prefix], { env })
      expect(result.status).toBe(1)
      expect(result.stderr).toMatch(message)
      expect(result.stderr.trim().split('\n')).toHaveLength(1)
      expect(existsSync(to)).toBe(false)
    }
  })

  describe.skipIf(!canServe || !rkt || !existsSync(stage1))(
    'with the real rkt (on PATH, stage1-fly.aci beside it)',
    () => {
      it('trusts the key, fetches the signed image by name and runs it', () => {
        const ran = fetchAndRunWithRkt(signed.image, 'localhost/apps/hello:1.0')
        expect(ran.status, ran.stderr).toBe(0)
        expect(ran.stderr).toContain('signature verified')
        expect(ran.stdout).toContain('Hello, world!')
      })

      it('fetches a layered image by name with its layers, found by discovery under their own prefix', () => {
        const layered = buildJson(
          [
            'layered',
            'localhost/apps/layered-hello',
            'hello',
            'hello',
            '--out-dir',
            out.path,
            '--image-version',
            '2.0',
          ].concat(['--layer-prefix', 'localhost/apps/layers', '--sign', '--key', key.fingerprint]),
          { env },
        )
        const ran = fetchAndRunWithRkt(layered.image, 'localhost/apps/layered-hello:2.0')
        expect(ran.status, ran.stderr).toBe(0)
        expect(ran.stdout).toContain('Hello, world!')
        expect(ran.stdout).toMatch(/^localhost\/apps\/layers\/glibc-/m)
        expect(ran.stdout).toMatch(/^localhost\/apps\/layered-hello:2\.0$/m)
      })
    },
  )
})
