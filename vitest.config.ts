import { defineConfig } from 'vitest/config'

/**
 * Tests on virtual time or with no time at all (the pure cores, the simulators): their outcome cannot depend
 * on how loaded the machine is, so they run two at a time, in workers reused across files (they hold no state
 * between files; this group ran in 63 s isolated, 40 s reused). Everything else (real sockets, processes, timers)
 * runs one file at a time afterwards: on two cores, two such files side by side make each other's timings lie.
 * That group also reuses its worker across files: each file stops what it started (agents, nodes, processes)
 * in its own hooks, and a fresh worker per file cost about 8 % of the whole run in imports alone (libp2p and
 * the agent loaded again 129 times; test/net alone: 81 s isolated, 37-45 s reused, same load).
 */
const VIRTUAL_TIME = [
  'test/raft/**/*.test.ts',
  'test/state/**/*.test.ts',
  'test/swim/**/*.test.ts',
  'test/time/**/*.test.ts',
  'test/sim/**/*.test.ts',
  'test/sim-scale/**/*.test.ts',
  'test/check/**/*.test.ts',
]

export default defineConfig({
  test: {
    // Real-network suites spawn processes; two cores in CI means a modest pool.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'virtual-time',
          include: VIRTUAL_TIME,
          maxWorkers: 2,
          isolate: false,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'real-time',
          include: ['test/**/*.test.ts'],
          exclude: VIRTUAL_TIME,
          maxWorkers: 1,
          isolate: false,
          setupFiles: ['test/setup/no-leaked-processes.ts'],
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
})
