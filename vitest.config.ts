import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real-network suites spawn processes; two cores in CI means a modest pool.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
