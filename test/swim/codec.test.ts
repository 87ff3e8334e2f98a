import fc from 'fast-check'
import { writer as createWriter } from 'protons-runtime'
import { describe, expect, it } from 'vitest'
import { decodeSwimMessage, encodeSwimMessage, SwimCodecError } from '../../src/swim/codec.ts'
import type { MemberRecord, PushPullEntry, SwimMessage, Update } from '../../src/swim/types.ts'

const text = (maxLength: number) => fc.string({ unit: 'grapheme', maxLength })
const id = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 })
const incarnation = fc.maxSafeNat()
const seq = fc.integer({ min: 0, max: 0xffff_ffff })

const recordArb: fc.Arbitrary<MemberRecord> = fc.record({
  id,
  name: text(40),
  addrs: fc.array(text(80), { maxLength: 4 }),
  capabilities: fc.array(text(20), { maxLength: 4 }),
  labels: fc.dictionary(text(20), text(40), { maxKeys: 4 }),
  role: fc.constantFrom('voter' as const, 'nonvoter' as const),
  load: fc.double({ min: 0, max: 1, noNaN: true }),
  incarnation,
})

const statusArb = fc.constantFrom('alive' as const, 'suspect' as const, 'dead' as const, 'left' as const)

const updateArb: fc.Arbitrary<Update> = fc.oneof(
  recordArb.map(member => ({ type: 'alive' as const, member })),
  fc.record({ type: fc.constant('suspect' as const), id, incarnation, from: id }),
  fc.record({ type: fc.constant('dead' as const), id, incarnation, from: id }),
  fc.record({ type: fc.constant('left' as const), id, incarnation }),
)

const messageArb: fc.Arbitrary<SwimMessage> = fc.oneof(
  fc.record(
    { type: fc.constant('ping' as const), seq, target: id, suspectIncarnation: incarnation },
    { requiredKeys: ['type', 'seq', 'target'] },
  ),
  fc.record({ type: fc.constant('ack' as const), seq }),
  fc.record(
    { type: fc.constant('pingReq' as const), seq, target: id, suspectIncarnation: incarnation },
    { requiredKeys: ['type', 'seq', 'target'] },
  ),
  fc.record({ type: fc.constant('nack' as const), seq }),
  fc.record({
    type: fc.constant('pushPull' as const),
    reply: fc.boolean(),
    members: fc.array(
      fc.tuple(recordArb, statusArb).map(([record, status]): PushPullEntry => ({ ...record, status })),
      { maxLength: 5 },
    ),
  }),
  fc.record({ type: fc.constant('gossip' as const), updates: fc.array(updateArb, { maxLength: 6 }) }),
)

const sample: SwimMessage = {
  type: 'gossip',
  updates: [
    {
      type: 'alive',
      member: {
        id: '12D3KooWabc',
        name: 'worker-1',
        addrs: ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWabc'],
        capabilities: ['gpu'],
        labels: Object.fromEntries([
          ['zone', 'a'],
          ['__proto__', 'x'],
        ]),
        role: 'voter',
        load: 0.5,
        incarnation: 1_700_000_000_000,
      },
    },
    { type: 'suspect', id: 'b', incarnation: 3, from: 'c' },
    { type: 'left', id: 'd', incarnation: 9 },
  ],
}

function expectCodecError(bytes: Uint8Array): void {
  expect(() => decodeSwimMessage(bytes)).toThrow(SwimCodecError)
}

describe('SWIM codec', () => {
  it('round-trips every valid message', () => {
    fc.assert(
      fc.property(messageArb, message => {
        expect(decodeSwimMessage(encodeSwimMessage(message))).toEqual(message)
      }),
      { numRuns: 500 },
    )
  })

  it('keeps a __proto__ label as a label', () => {
    const decoded = decodeSwimMessage(encodeSwimMessage(sample))
    expect(decoded).toEqual(sample)
    const update = decoded.type === 'gossip' ? decoded.updates[0] : undefined
    expect(update?.type === 'alive' && Object.hasOwn(update.member.labels, '__proto__')).toBe(true)
    expect(Object.getPrototypeOf(update?.type === 'alive' ? update.member.labels : {})).toBe(Object.prototype)
  })

  it('rejects random bytes with SwimCodecError only', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), bytes => {
        try {
          decodeSwimMessage(bytes)
        } catch (err) {
          expect(err).toBeInstanceOf(SwimCodecError)
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('decodes a mutated or truncated valid message to a valid message or SwimCodecError', () => {
    fc.assert(
      fc.property(
        messageArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.nat(),
        (message, flips, cut) => {
          const bytes = encodeSwimMessage(message)
          for (const [position, value] of flips) if (bytes.length > 0) bytes[position % bytes.length] = value
          const truncated = bytes.subarray(0, bytes.length === 0 ? 0 : cut % (bytes.length + 1))
          for (const candidate of [bytes, truncated]) {
            let decoded: SwimMessage
            try {
              decoded = decodeSwimMessage(candidate)
            } catch (err) {
              expect(err).toBeInstanceOf(SwimCodecError)
              continue
            }
            // Whatever decodes must encode again (it is within the limits) and decode to the same.
            expect(decodeSwimMessage(encodeSwimMessage(decoded))).toEqual(decoded)
          }
        },
      ),
      { numRuns: 1000 },
    )
  })

  it('rejects missing, foreign and repeated fields, bad values and bad UTF-8', () => {
    const build = (write: (w: ReturnType<typeof createWriter>) => void) => {
      const w = createWriter()
      write(w)
      return w.finish()
    }
    // No type.
    expectCodecError(build(w => w.uint32(16).uint32(1)))
    // Unknown type 9.
    expectCodecError(build(w => w.uint32(8).uint32(9)))
    // ping without target.
    expectCodecError(build(w => w.uint32(8).uint32(1).uint32(16).uint32(5)))
    // ack with a target (a field ack does not use).
    expectCodecError(build(w => w.uint32(8).uint32(2).uint32(16).uint32(5).uint32(26).string('x')))
    // seq twice.
    expectCodecError(build(w => w.uint32(8).uint32(2).uint32(16).uint32(5).uint32(16).uint32(6)))
    // seq beyond 32 bits.
    expectCodecError(
      build(w =>
        w
          .uint32(8)
          .uint32(2)
          .uint32(16)
          .uint64Number(2 ** 40),
      ),
    )
    // seq with the wrong wire type (length-delimited).
    expectCodecError(build(w => w.uint32(8).uint32(2).uint32(18).string('5')))
    // pushPull reply = 2.
    expectCodecError(build(w => w.uint32(8).uint32(5).uint32(40).uint32(2)))
    // Invalid UTF-8 in target.
    expectCodecError(
      build(w =>
        w
          .uint32(8)
          .uint32(1)
          .uint32(16)
          .uint32(5)
          .uint32(26)
          .bytes(new Uint8Array([0xc3, 0x28])),
      ),
    )
    // Empty target.
    expectCodecError(build(w => w.uint32(8).uint32(1).uint32(16).uint32(5).uint32(26).string('')))
    // Field number 0.
    expectCodecError(build(w => w.uint32(8).uint32(2).uint32(16).uint32(5).uint32(0).uint32(0)))
    // A varint past a safe integer.
    expectCodecError(
      new Uint8Array([8, 1, 16, 1, 26, 1, 0x61, 32, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
    )
  })

  it('rejects members out of range or without required fields', () => {
    // Load is written as a double: patch its 8 bytes to 1.5 and to NaN.
    const bytes = encodeSwimMessage(sample)
    const loadTag = bytes.indexOf(57) // field 7, wire type 1
    expect(loadTag).toBeGreaterThan(0)
    for (const bad of [1.5, Number.NaN, -1]) {
      const patched = bytes.slice()
      new DataView(patched.buffer).setFloat64(loadTag + 1, bad, true)
      expectCodecError(patched)
    }
    // A push-pull member without status.
    const w = createWriter()
    w.uint32(8).uint32(5).uint32(40).uint32(0).uint32(50).fork()
    w.uint32(10)
      .string('a')
      .uint32(18)
      .string('a')
      .uint32(48)
      .uint32(1)
      .uint32(57)
      .double(0)
      .uint32(64)
      .uint32(1)
    w.ldelim()
    expectCodecError(w.finish())
  })

  it('refuses to encode what it would not decode', () => {
    const bad: unknown[] = [
      { type: 'ping', seq: -1, target: 'a' },
      { type: 'ping', seq: 1, target: '' },
      { type: 'ack', seq: 2 ** 32 },
      { type: 'pushPull', reply: 'yes', members: [] },
      { type: 'gossip', updates: [{ type: 'suspect', id: 'a', incarnation: 1.5, from: 'b' }] },
      { type: 'gossip', updates: [{ type: 'alive', member: { id: 'a' } }] },
      { type: 'gossip', updates: [{ type: 'left', id: '\ud800', incarnation: 1 }] },
      { type: 'hello' },
    ]
    for (const message of bad) expect(() => encodeSwimMessage(message as SwimMessage)).toThrow(SwimCodecError)
  })

  it('skips unknown fields for forward compatibility', () => {
    const w = createWriter()
    w.uint32(8).uint32(2).uint32(16).uint32(7)
    w.uint32(99 * 8 + 2).string('future')
    w.uint32(98 * 8).uint32(5)
    expect(decodeSwimMessage(w.finish())).toEqual({ type: 'ack', seq: 7 })
  })
})
