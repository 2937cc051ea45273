// Builds dist/: one bundled file per command. Node then reads a few files at start-up instead of
// about a hundred modules, which is most of what a thin build costs beyond Nix itself.
import { rm } from 'node:fs/promises'
import { build } from 'esbuild'

await rm('dist', { recursive: true, force: true })

await build({
  entryPoints: ['src/bin/nix2aci.ts', 'src/bin/buildThinACI.ts', 'src/bin/buildFatACI.ts'],
  outdir: 'dist/bin',
  bundle: true,
  splitting: false,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Loaded only where used: zx by the acbuild engine, ora for a spinner on a terminal.
  external: ['zx', 'ora'],
  // yargs' CommonJS build wraps help text at word boundaries; its ESM build breaks words apart.
  alias: { yargs: './node_modules/yargs/index.cjs' },
  // Bundled CommonJS dependencies (tar-stream, yargs) still use require and __dirname.
  banner: {
    js: [
      "import { createRequire as __nix2aciRequire } from 'node:module';",
      "import { dirname as __nix2aciDirname } from 'node:path';",
      "import { fileURLToPath as __nix2aciPath } from 'node:url';",
      'const require = __nix2aciRequire(import.meta.url);',
      'const __dirname = __nix2aciDirname(__nix2aciPath(import.meta.url));',
    ].join(' '),
  },
  logLevel: 'warning',
})
