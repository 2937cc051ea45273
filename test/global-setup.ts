// Once per test run: build the CLI, so tests run what users run (dist/bin), and build the
// fixture package set, rooted so that a test's `nix-store --gc` does not throw it away.
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

export default function setup(): void {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' })
  execFileSync('nix-build', ['fixtures', '--out-link', '.test-roots/fixtures'], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  })
}
