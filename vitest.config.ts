import { defineConfig } from 'vitest/config'

// Tests drive the real Nix, tar, actool and bubblewrap; builds share one Nix store,
// so files run one at a time and each test gets a generous timeout.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 600_000,
    globalSetup: ['test/global-setup.ts'],
    // .ci/run reads the json report for its summary line.
    reporters: ['default', ['json', { outputFile: '.test-results.json' }]],
  },
})
