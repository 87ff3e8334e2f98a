/**
 * Seeds of the default sweep (`npm run sim`: task workload on) that once broke the liveness check, each
 * pinned with the run options the sweep used. Each takes about a second.
 */

import { describe, expect, it } from 'vitest'
import { runSeed } from '../../scripts/sim/runner.ts'

describe('liveness seeds of the default sweep', () => {
  // A member removed while its leader crashed led the new configuration (Raft allows it until the removal
  // commits); committing it needed a member cut off through the faults, which got the 60 KiB state in 64-byte
  // chunks, 1 KiB a round trip, for 58 ticks after the faults stopped. The simulator keeps at least 16 KiB of
  // a snapshot in flight at any chunk size (`SNAPSHOT_WINDOW_BYTES` in runner.ts).
  it('3 agents, seed 802: a leader is established while a snapshot in small chunks catches a member up', async () => {
    const result = await runSeed({ seed: 802, tasks: true })
    expect(result.violation, JSON.stringify(result.violation)).toBeUndefined()
  }, 30_000)
})
