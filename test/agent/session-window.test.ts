/**
 * A retry outside the session's result window (issue 15, the `session-window` hole). A command applied, its
 * answer was lost (a snapshot covered its slot), and before the proposer's retry the session applied more
 * than 1,024 newer results: the state machine no longer has the answer and says `StaleRequest`. The command
 * did take effect, so the caller must hear "outcome unknown" (`NoLeaderError`), never `InvalidArgumentError`,
 * whose documented meaning is "nothing was written". Run both ways: with the bug switch the check fires.
 */
import { describe, expect, it } from 'vitest'
import { unexpected } from '../../src/agent/api/consensus.ts'
import { type ProposerContext, propose } from '../../src/agent/node/proposer.ts'
import { ProposalSkippedError } from '../../src/agent/node/raft-runner.ts'
import { InvalidArgumentError, NoLeaderError } from '../../src/index.ts'
import { shellBugs } from '../../src/shell-bugs.ts'
import { decodeEnvelope, encodeEnvelope } from '../../src/state/codec.ts'
import { StateMachine } from '../../src/state/state-machine.ts'
import { systemScheduler } from '../../src/time/system-scheduler.ts'

const WINDOW = 1_024

/** What the caller of `agent.consensus.propose` gets: the result, or the error the API makes of it. */
async function outcome(bug: boolean): Promise<{ error?: Error; value?: unknown }> {
  const machine = new StateMachine({ maxResultsPerSession: WINDOW })
  let index = 0
  const apply = (data: Uint8Array) => machine.apply({ index: ++index, term: 1, data }).result
  apply(
    encodeEnvelope({
      ts: systemScheduler.wallNow(),
      command: { type: 'openSession', sessionId: 's', agentId: 'a', ttlMs: 60_000 },
    }),
  )
  let calls = 0
  const context: ProposerContext = {
    selfId: 'a',
    leader: () => 'a',
    proposeLocal: async data => {
      const result = apply(data)
      if (++calls > 1) return result
      // The first try applied; before its retry, the session's other calls fill the window past it...
      const decoded = decodeEnvelope(data)
      if (!decoded.ok) throw new Error(decoded.error)
      const seq = decoded.envelope.seq!
      const ackedBelow = decoded.envelope.ackedBelow
      for (let next = seq + 1; next <= seq + WINDOW + 1; next++) {
        apply(
          encodeEnvelope({
            ts: systemScheduler.wallNow(),
            session: 's',
            seq: next,
            ackedBelow,
            command: { type: 'put', key: `n${next}`, value: 1 },
          }),
        )
      }
      // ...and its own answer was lost.
      throw new ProposalSkippedError(index)
    },
    forward: async () => new Uint8Array(),
    leaderChange: async () => {},
    scheduler: systemScheduler,
    closed: false,
    bugs: bug ? shellBugs(['session-window']) : undefined,
  }
  try {
    const result = await propose(
      context,
      { type: 'put', key: 'k', value: 1 },
      { deadline: systemScheduler.now() + 5_000, session: { id: 's', seq: 1, ackedBelow: 1 } },
    )
    if (result.type === 'error') return { error: unexpected(result) }
    return { value: result }
  } catch (err) {
    return { error: err as Error }
  } finally {
    // It did take effect.
    expect(machine.get('k')?.value).toBe(1)
  }
}

describe('a retry outside the session window', () => {
  for (const bug of [false, true]) {
    const label = bug ? ' (bug switch session-window: the check fires)' : ''
    it(`reports an unknown outcome, never "nothing was written"${label}`, async () => {
      const { error } = await outcome(bug)
      const claimsNothingWritten = error instanceof InvalidArgumentError
      expect(claimsNothingWritten).toBe(bug)
      if (!bug) expect(error).toBeInstanceOf(NoLeaderError)
    })
  }
})
