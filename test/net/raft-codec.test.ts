import fc from 'fast-check'
import { writer as createWriter, type Writer } from 'protons-runtime'
import { describe, expect, it } from 'vitest'
import { FrameDecoder, FrameError } from '../../src/net/frame.ts'
import { decodeRaftMessage, encodeRaftFrame, encodeRaftMessage } from '../../src/net/raft-codec.ts'
import type { Message, MessageType } from '../../src/raft/types.ts'
import { messageArb, smallAppend } from './arbitraries.ts'

const ALL_TYPES: MessageType[] = [
  'vote',
  'voteResponse',
  'preVote',
  'preVoteResponse',
  'append',
  'appendResponse',
  'heartbeat',
  'heartbeatResponse',
  'snapshot',
  'snapshotResponse',
  'timeoutNow',
  'readIndex',
  'readIndexResponse',
]

function expectFrameError(bytes: Uint8Array): FrameError {
  try {
    decodeRaftMessage(bytes)
  } catch (err) {
    expect(err).toBeInstanceOf(FrameError)
    expect((err as FrameError).name).toBe('FrameError')
    return err as FrameError
  }
  throw new Error(`decoded without error: ${Buffer.from(bytes).toString('hex')}`)
}

/** Hand-built protobuf, to write what our encoder never would. */
function build(write: (w: Writer) => void): Uint8Array {
  const w = createWriter()
  write(w)
  return w.finish()
}

const VOTE = 1
const APPEND = 5
const HEARTBEAT = 7

function writeBase(w: Writer, type: number, term = 3): void {
  w.uint32(8).uint32(type) // type
  w.uint32(18).string('a') // from
  w.uint32(26).string('b') // to
  w.uint32(32).uint32(term) // term
}

function writeVoteFields(w: Writer): void {
  w.uint32(120).uint32(7) // lastLogIndex (15)
  w.uint32(128).uint32(2) // lastLogTerm (16, two-byte tag)
  w.uint32(136).uint32(0) // transfer (17)
}

describe('raft codec', () => {
  it('round-trips every message variant exactly', () => {
    const seen = new Set<MessageType>()
    fc.assert(
      fc.property(messageArb, msg => {
        seen.add(msg.type)
        const decoded = decodeRaftMessage(encodeRaftMessage(msg))
        expect(decoded).toStrictEqual(msg)
        // The frame form carries the same bytes behind a length prefix.
        const decoder = new FrameDecoder()
        decoder.push(encodeRaftFrame(msg))
        expect(decodeRaftMessage(decoder.next()!)).toStrictEqual(msg)
        expect(decoder.bufferedBytes).toBe(0)
      }),
      { numRuns: 2000 },
    )
    expect([...seen].sort()).toEqual([...ALL_TYPES].sort())
  })

  it('decodes data into fresh buffers that do not alias the frame', () => {
    const msg = smallAppend('a', 'b', 1)
    const bytes = encodeRaftMessage(msg)
    const decoded = decodeRaftMessage(bytes)
    if (decoded.type !== 'append') throw new Error('wrong type')
    bytes.fill(0)
    expect(decoded.entries[0].data).toStrictEqual(new Uint8Array(64).fill(1))
  })

  it('never throws anything but FrameError on random bytes, and what decodes re-encodes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), bytes => {
        let msg: Message
        try {
          msg = decodeRaftMessage(bytes)
        } catch (err) {
          expect(err).toBeInstanceOf(FrameError)
          return
        }
        expect(decodeRaftMessage(encodeRaftMessage(msg))).toStrictEqual(msg)
      }),
      { numRuns: 5000 },
    )
  })

  it('never throws anything but FrameError on mutated valid messages', () => {
    fc.assert(
      fc.property(
        messageArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        (msg, edits) => {
          const bytes = encodeRaftMessage(msg)
          for (const [position, value] of edits) bytes[position % bytes.length] = value
          try {
            const decoded = decodeRaftMessage(bytes)
            expect(decodeRaftMessage(encodeRaftMessage(decoded))).toStrictEqual(decoded)
          } catch (err) {
            expect(err).toBeInstanceOf(FrameError)
          }
        },
      ),
      { numRuns: 3000 },
    )
  })

  it('rejects every truncation of a valid message', () => {
    fc.assert(
      fc.property(messageArb, fc.nat(), (msg, cut) => {
        const bytes = encodeRaftMessage(msg)
        expectFrameError(bytes.subarray(0, cut % bytes.length))
      }),
      { numRuns: 2000 },
    )
  })

  it('rejects garbage, empty input and unknown types', () => {
    expectFrameError(new Uint8Array(0))
    expectFrameError(new TextEncoder().encode('{"type":"vote"}'))
    expectFrameError(new Uint8Array(20).fill(0xff))
    expect(expectFrameError(build(w => writeBase(w, 14))).message).toMatch(/Unknown type/)
    expect(expectFrameError(build(w => writeBase(w, 0))).message).toMatch(/Unknown type/)
  })

  it('rejects a message lacking a required field', () => {
    // A vote without transfer.
    expectFrameError(
      build(w => {
        writeBase(w, VOTE)
        w.uint32(120).uint32(7)
        w.uint32(128).uint32(2)
      }),
    )
    // A message without from.
    expectFrameError(
      build(w => {
        w.uint32(8).uint32(VOTE)
        w.uint32(26).string('b')
        w.uint32(32).uint32(1)
        writeVoteFields(w)
      }),
    )
    // An entry without data.
    expectFrameError(
      build(w => {
        writeBase(w, APPEND)
        w.uint32(40).uint32(0).uint32(48).uint32(0)
        w.uint32(58).fork().uint32(8).uint32(1).uint32(16).uint32(1).uint32(24).uint32(1).ldelim()
        w.uint32(64).uint32(0)
      }),
    )
    // Empty from.
    expectFrameError(
      build(w => {
        w.uint32(8).uint32(VOTE)
        w.uint32(18).string('')
        w.uint32(26).string('b')
        w.uint32(32).uint32(1)
        writeVoteFields(w)
      }),
    )
  })

  it('accepts the hand-built equivalent of a valid message, and skips unknown fields', () => {
    const vote = build(w => {
      writeBase(w, VOTE)
      writeVoteFields(w)
      w.uint32(99 * 8 + 2).string('from a later version')
      w.uint32(100 * 8).uint64(2n ** 60n)
    })
    expect(decodeRaftMessage(vote)).toStrictEqual({
      type: 'vote',
      from: 'a',
      to: 'b',
      term: 3,
      lastLogIndex: 7,
      lastLogTerm: 2,
      transfer: false,
    })
  })

  it('rejects type confusion: fields of another type, or a known field with the wrong wire type', () => {
    // A vote carrying append fields instead of its own.
    expectFrameError(
      build(w => {
        writeBase(w, VOTE)
        w.uint32(40).uint32(0).uint32(48).uint32(0).uint32(64).uint32(0)
      }),
    )
    // A valid heartbeat plus a field that belongs to votes.
    const heartbeat = (extra: (w: Writer) => void): Uint8Array =>
      build(w => {
        writeBase(w, HEARTBEAT)
        w.uint32(64).uint32(5)
        w.uint32(106).string('')
        extra(w)
      })
    expect(decodeRaftMessage(heartbeat(() => {})).type).toBe('heartbeat')
    expectFrameError(heartbeat(w => w.uint32(112).uint32(1)))
    // term as a string (wire type 2) instead of a varint.
    expectFrameError(
      build(w => {
        w.uint32(8).uint32(VOTE)
        w.uint32(18).string('a')
        w.uint32(26).string('b')
        w.uint32(34).string('3')
        writeVoteFields(w)
      }),
    )
    // from as a varint.
    expectFrameError(
      build(w => {
        w.uint32(8).uint32(VOTE)
        w.uint32(16).uint32(1)
        w.uint32(26).string('b')
        w.uint32(32).uint32(1)
        writeVoteFields(w)
      }),
    )
    // A bool that is neither 0 nor 1, an unknown entry type, invalid UTF-8, a group wire type.
    expectFrameError(
      build(w => {
        writeBase(w, VOTE)
        w.uint32(120).uint32(7).uint32(128).uint32(2).uint32(136).uint32(2)
      }),
    )
    expectFrameError(
      build(w => {
        writeBase(w, APPEND)
        w.uint32(40).uint32(0).uint32(48).uint32(0)
        w.uint32(58)
          .fork()
          .uint32(8)
          .uint32(1)
          .uint32(16)
          .uint32(1)
          .uint32(24)
          .uint32(3)
          .uint32(34)
          .bytes(new Uint8Array(1))
        w.ldelim()
        w.uint32(64).uint32(0)
      }),
    )
    expectFrameError(
      build(w => {
        w.uint32(8).uint32(VOTE)
        w.uint32(18).bytes(new Uint8Array([0xc3, 0x28]))
        w.uint32(26).string('b')
        w.uint32(32).uint32(1)
        writeVoteFields(w)
      }),
    )
    expectFrameError(
      build(w => {
        writeBase(w, VOTE)
        writeVoteFields(w)
        w.uint32(50 * 8 + 3)
      }),
    )
  })

  it('rejects negative and out-of-range indexes and terms', () => {
    // -1 written as a protobuf int64: ten bytes, 2^64 - 1 as unsigned.
    expectFrameError(
      build(w => {
        w.uint32(8).uint32(VOTE)
        w.uint32(18).string('a')
        w.uint32(26).string('b')
        w.uint32(32).int64(-1n)
        writeVoteFields(w)
      }),
    )
    // 2^53 does not fit a safe integer.
    expectFrameError(
      build(w => {
        writeBase(w, VOTE)
        w.uint32(120).uint64(2n ** 53n)
        w.uint32(128).uint32(2).uint32(136).uint32(0)
      }),
    )
    // A snapshot response offset below -1 (zig-zag 3 = -2).
    expectFrameError(
      build(w => {
        writeBase(w, 10)
        w.uint32(80).uint32(1).uint32(152).uint32(3).uint32(168).uint32(0)
      }),
    )
  })

  it('rejects appends whose entries are not contiguous after prevLogIndex', () => {
    const entry = (index: number) => (w: Writer) => {
      w.uint32(58).fork()
      w.uint32(8).uint32(1).uint32(16).uint32(index).uint32(24).uint32(1).uint32(34).bytes(new Uint8Array(0))
      w.ldelim()
    }
    const append = (...indexes: number[]) =>
      build(w => {
        writeBase(w, APPEND)
        w.uint32(40).uint32(4).uint32(48).uint32(1)
        for (const index of indexes) entry(index)(w)
        w.uint32(64).uint32(0)
      })
    expect(decodeRaftMessage(append(5, 6)).type).toBe('append')
    expectFrameError(append(6))
    expectFrameError(append(5, 7))
  })

  it('rejects a nested message whose length runs past its parent', () => {
    const bytes = build(w => {
      writeBase(w, APPEND)
      w.uint32(40).uint32(0).uint32(48).uint32(0)
      w.uint32(58).uint32(200) // entry length far beyond the buffer
      w.uint32(8).uint32(1)
    })
    expectFrameError(bytes)
  })

  it('refuses to encode what it could not decode', () => {
    const bad: unknown[] = [
      { type: 'vote', from: 'a', to: 'b', term: -1, lastLogIndex: 0, lastLogTerm: 0, transfer: false },
      { type: 'vote', from: 'a', to: 'b', term: 1.5, lastLogIndex: 0, lastLogTerm: 0, transfer: false },
      { type: 'vote', from: '', to: 'b', term: 1, lastLogIndex: 0, lastLogTerm: 0, transfer: false },
      { type: 'vote', from: 'a\ud800', to: 'b', term: 1, lastLogIndex: 0, lastLogTerm: 0, transfer: false },
      { type: 'nope', from: 'a', to: 'b', term: 1 },
      { ...smallAppend('a', 'b', 3), prevLogIndex: 5 },
      { ...smallAppend('a', 'b', 1), notify: [''] },
      { ...smallAppend('a', 'b', 1), notify: 'c' },
      { type: 'snapshotResponse', from: 'a', to: 'b', term: 1, index: 1, offset: -2, done: false },
      {
        type: 'snapshot',
        from: 'a',
        to: 'b',
        term: 1,
        offset: 0,
        data: new Uint8Array(0),
        done: true,
        meta: { index: 1, term: 1, config: { voters: ['x'], nonVoters: ['x'] } },
      },
    ]
    for (const msg of bad) expect(() => encodeRaftMessage(msg as Message)).toThrow(FrameError)
  })

  it('refuses to frame a message over the frame limit', () => {
    const msg = smallAppend('a', 'b', 1, 1000)
    expect(() => encodeRaftFrame(msg, 500)).toThrow(FrameError)
    expect(encodeRaftFrame(msg, 2000).byteLength).toBeGreaterThan(1000)
  })
})
