/**
 * A command answered `SessionExpired` goes again under the next session when it surely never applied: only
 * the answered try reached a log (every other one a leader refused before appending). An agent cut off for
 * longer than its session's ttl otherwise failed what it sent just after it was back, with an unknown
 * outcome, before it learned of the lapse (simulator, 5 agents, seed 1462: a write 17 ticks after the
 * faults stopped). When another try may have reached a log, the outcome stays unknown (`NoLeaderError`).
 */

import { describe, expect, it } from 'vitest'
import { Client } from '../../../src/agent/node/client.ts'
import { ProposalSkippedError } from '../../../src/agent/node/raft-runner.ts'
import { SessionKeeper } from '../../../src/agent/node/session.ts'
import { resolveTiming } from '../../../src/agent/options.ts'
import { NoLeaderError } from '../../../src/errors.ts'
import { NotLeaderError } from '../../../src/raft/errors.ts'
import { type CommandResult, decodeEnvelope } from '../../../src/state/index.ts'
import { VirtualScheduler } from '../../../src/time/index.ts'

const settle = (): Promise<void> => new Promise(resolve => setImmediate(resolve))
const log = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

/**
 * Submits one put on the leader `a`, whose tries are answered by `answers` in turn (an error is thrown);
 * returns the outcome and the session each try carried.
 */
async function submitThrough(answers: (CommandResult | Error)[]): Promise<{
  outcome: { result: CommandResult } | { error: unknown }
  sessions: (string | undefined)[]
}> {
  const scheduler = new VirtualScheduler({ start: 1_000 })
  let opened = 0
  const session = new SessionKeeper(
    'a',
    resolveTiming({ sessionTtlMs: 5_000 }),
    {
      submitRaw: async command => {
        if (command.type !== 'openSession') throw new Error('unexpected command')
        return { type: 'session', sessionId: command.sessionId, expiresAt: 0 }
      },
      keepAlive: async () => ({ status: 'renewed' as const }),
    },
    log as never,
    scheduler,
    () => `a/${++opened}`,
  )
  await session.open(10_000)
  const sessions: (string | undefined)[] = []
  const client = new Client({
    selfId: 'a',
    leader: () => 'a',
    proposeLocal: async data => {
      const decoded = decodeEnvelope(data)
      sessions.push(decoded.ok ? decoded.envelope.session : undefined)
      const answer = answers[sessions.length - 1]
      if (answer instanceof Error) throw answer
      return answer
    },
    forward: () => Promise.reject(new Error('not used')),
    leaderChange: ms => new Promise(resolve => scheduler.after(ms, resolve)),
    scheduler,
    closed: false,
    runner: { readIndex: async () => {} },
    session,
    operationTimeoutMs: 1_500,
  })
  let outcome: { result: CommandResult } | { error: unknown } | undefined
  client.submit({ type: 'put', key: 'k', value: 1 }).then(
    result => {
      outcome = { result }
    },
    error => {
      outcome = { error }
    },
  )
  for (let waited = 0; outcome === undefined && waited < 2_000; waited++) {
    await settle()
    scheduler.advance(1)
  }
  await session.stop(false, 0)
  if (outcome === undefined) throw new Error('the submit never ended')
  return { outcome, sessions }
}

const expired: CommandResult = {
  type: 'error',
  code: 'SessionExpired',
  message: 'session a/1 does not exist or has expired',
}
const written: CommandResult = { type: 'revision', revision: 7 }

describe('Client.submit after its session lapsed', () => {
  it('sends a command that surely never applied again under a new session, and returns its result', async () => {
    const { outcome, sessions } = await submitThrough([expired, written])
    expect(outcome).toEqual({ result: written })
    expect(sessions).toEqual(['a/1', 'a/2'])
  })

  it('does the same when the tries before were refused before any log took them', async () => {
    const refused = new NotLeaderError('a')
    const { outcome, sessions } = await submitThrough([refused, expired, written])
    expect(outcome).toEqual({ result: written })
    expect(sessions).toEqual(['a/1', 'a/1', 'a/2'])
  })

  it('reports an unknown outcome when an earlier try may have applied before the lapse', async () => {
    // A snapshot covered the first try's slot: it may have applied while the session lived.
    const { outcome, sessions } = await submitThrough([new ProposalSkippedError(5), expired, written])
    expect('error' in outcome && outcome.error).toBeInstanceOf(NoLeaderError)
    expect(sessions).toEqual(['a/1', 'a/1'])
  })
})
