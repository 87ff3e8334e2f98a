/** fast-check arbitraries over the Raft `Message` union, shared by the net tests. */

import fc from 'fast-check'

/** Plain objects, as the codec builds them (fast-check's records default to a null prototype). */
const plain = { noNullPrototype: true } as const

import type { Config, Entry, Message, SnapshotMeta } from '../../src/raft/types.ts'

export const nodeIdArb = fc.string({ minLength: 1, maxLength: 60, unit: 'grapheme' })
const indexArb = fc.oneof(fc.nat(1000), fc.maxSafeNat())
const contextArb = fc.string({ maxLength: 40, unit: 'grapheme' })
const dataArb = fc.uint8Array({ maxLength: 64 })

export const configArb: fc.Arbitrary<Config> = fc
  .uniqueArray(nodeIdArb, { maxLength: 7 })
  .chain(ids =>
    fc.nat(ids.length).map(split => ({ voters: ids.slice(0, split), nonVoters: ids.slice(split) })),
  )

const metaArb: fc.Arbitrary<SnapshotMeta> = fc.record(
  { index: indexArb, term: indexArb, config: configArb },
  plain,
)

const base = { from: nodeIdArb, to: nodeIdArb, term: indexArb }

const appendArb: fc.Arbitrary<Message> = fc
  .record({
    ...base,
    prevLogIndex: fc.oneof(fc.nat(1000), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - 10 })),
    prevLogTerm: indexArb,
    leaderCommit: indexArb,
    entries: fc.array(
      fc.record(
        { term: indexArb, type: fc.constantFrom('normal' as const, 'config' as const), data: dataArb },
        plain,
      ),
      { maxLength: 5 },
    ),
    commitOnly: fc.boolean(),
    notify: fc.option(fc.array(nodeIdArb, { minLength: 1, maxLength: 3 }), { nil: undefined }),
  })
  .map(({ entries, commitOnly, notify, ...rest }) => ({
    type: 'append' as const,
    ...rest,
    entries: entries.map((entry, i): Entry => ({ ...entry, index: rest.prevLogIndex + 1 + i })),
    // On the wire only as true, and only without entries.
    ...(commitOnly && entries.length === 0 ? { commitOnly: true } : {}),
    ...(notify === undefined ? {} : { notify }),
  }))

export const messageArb: fc.Arbitrary<Message> = fc.oneof(
  fc.record(
    {
      type: fc.constantFrom('vote' as const, 'preVote' as const),
      ...base,
      lastLogIndex: indexArb,
      lastLogTerm: indexArb,
      transfer: fc.boolean(),
    },
    plain,
  ),
  fc.record(
    {
      type: fc.constantFrom('voteResponse' as const, 'preVoteResponse' as const),
      ...base,
      granted: fc.boolean(),
    },
    plain,
  ),
  appendArb,
  fc.record(
    {
      type: fc.constant('appendResponse' as const),
      ...base,
      success: fc.boolean(),
      index: indexArb,
      hintIndex: indexArb,
      hintTerm: indexArb,
    },
    plain,
  ),
  fc.record(
    { type: fc.constant('heartbeat' as const), ...base, leaderCommit: indexArb, context: contextArb },
    plain,
  ),
  fc.record(
    {
      type: fc.constantFrom('heartbeatResponse' as const, 'readIndex' as const),
      ...base,
      context: contextArb,
    },
    plain,
  ),
  fc.record(
    {
      type: fc.constant('snapshot' as const),
      ...base,
      meta: metaArb,
      offset: fc.oneof(fc.nat(1_000_000), fc.integer({ min: 0, max: 2 ** 52 - 1 })),
      data: dataArb,
      done: fc.boolean(),
    },
    plain,
  ),
  fc.record(
    {
      type: fc.constant('snapshotResponse' as const),
      ...base,
      index: indexArb,
      offset: fc.integer({ min: -1, max: 2 ** 52 - 1 }),
      done: fc.boolean(),
    },
    plain,
  ),
  fc.record({ type: fc.constant('timeoutNow' as const), ...base }, plain),
  fc.record(
    { type: fc.constant('readIndexResponse' as const), ...base, context: contextArb, index: indexArb },
    plain,
  ),
)

/** A small append, as the Raft hot path sends them. */
export function smallAppend(from: string, to: string, index: number, dataBytes = 64): Message {
  return {
    type: 'append',
    from,
    to,
    term: 1,
    prevLogIndex: index - 1,
    prevLogTerm: 1,
    leaderCommit: index - 1,
    entries: [{ term: 1, index, type: 'normal', data: new Uint8Array(dataBytes).fill(index & 255) }],
  }
}
