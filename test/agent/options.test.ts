import { describe, expect, it } from 'vitest'
import { type AgentOptions, conclave, createAgent, InvalidArgumentError } from '../../src/index.ts'

/** Every bad option, to createAgent and to the service factory alike: a typed error with a code, at once. */
const BAD: [string, AgentOptions][] = [
  ['a negative tick', { tickMs: -1 }],
  ['heartbeats not below the election timeout', { electionTicks: 3, heartbeatTicks: 3 }],
  ['a session ttl that is not a number', { sessionTtlMs: 'soon' as never }],
  ['an unknown membership preset', { membership: 'wan' as never }],
  ['a probe timeout above the probe interval', { membership: { probeTimeout: 900 } }],
  ['an unknown SWIM parameter', { membership: { probeIntervall: 1 } as never }],
  ['a zero request rate', { rateLimits: { requests: { perSecond: 0 } } }],
  ['a burst below one', { rateLimits: { raftMessages: { perSecond: 10, burst: 0 } } }],
  ['an unknown raft option', { raft: { electionTick: 5 } as never }],
  ['a raft value the core refuses', { raft: { maxMessageBytes: 0 } }],
  ['raft heartbeats not below its election timeout', { raft: { heartbeatTicks: 20 } }],
  ['an unknown option', { tickMS: 10 } as never],
]

describe('agent options', () => {
  for (const [what, options] of BAD) {
    it(`refuses ${what} with InvalidArgumentError, in createAgent and conclave()`, async () => {
      const created = await createAgent(options).then(
        async agent => {
          await agent.stop()
          return undefined
        },
        (err: unknown) => err,
      )
      expect(created).toBeInstanceOf(InvalidArgumentError)
      expect((created as InvalidArgumentError).code).toBe('ERR_INVALID_ARGUMENT')
      expect(() => conclave(options)).toThrow(InvalidArgumentError)
    })
  }

  it('names the option in the message', () => {
    expect(() => conclave({ membership: { probeTimeout: 900 } })).toThrow(/membership: probeTimeout/)
    expect(() => conclave({ rateLimits: { requests: { perSecond: 0 } } })).toThrow(/rateLimits\.requests/)
    expect(() => conclave({ raft: { maxMessageBytes: 0 } })).toThrow(/maxMessageBytes/)
  })

  it('keeps node options out of the service factory: they belong to the embedding node', () => {
    expect(() => conclave({ listen: ['/ip4/127.0.0.1/tcp/0'] } as never)).toThrow(/unknown option listen/)
    expect(() => conclave({ name: 'ok', raft: { preVote: true } })).not.toThrow()
  })
})
