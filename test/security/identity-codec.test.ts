import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FrameError } from '../../src/net/frame.ts'
import {
  decodeIdentityMessage,
  encodeIdentityMessage,
  type IdentityMessage,
  MAX_CERTIFICATES,
} from '../../src/security/identity-codec.ts'

describe('identity message codec', () => {
  it('round-trips messages', () => {
    const messageArb: fc.Arbitrary<IdentityMessage> = fc.record(
      {
        nonce: fc.uint8Array({ maxLength: 40 }),
        certificates: fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: MAX_CERTIFICATES }),
        signature: fc.uint8Array({ maxLength: 80 }),
        error: fc.string({ unit: 'grapheme', maxLength: 50 }),
      },
      { requiredKeys: ['certificates'], noNullPrototype: true },
    )
    fc.assert(
      fc.property(messageArb, message => {
        expect(decodeIdentityMessage(encodeIdentityMessage(message))).toStrictEqual(message)
      }),
    )
  })

  it('throws only FrameError on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), bytes => {
        try {
          decodeIdentityMessage(bytes)
        } catch (err) {
          expect(err).toBeInstanceOf(FrameError)
        }
      }),
    )
  })

  it('refuses more certificates than a chain may have, and oversized messages', () => {
    const many = { certificates: Array.from({ length: MAX_CERTIFICATES + 1 }, () => new Uint8Array(1)) }
    expect(() => encodeIdentityMessage(many)).toThrow(FrameError)
    const bytes = new Uint8Array((MAX_CERTIFICATES + 1) * 3)
    for (let i = 0; i < MAX_CERTIFICATES + 1; i++) bytes.set([0x12, 1, 0], i * 3)
    expect(() => decodeIdentityMessage(bytes)).toThrow(FrameError)
    expect(() => encodeIdentityMessage({ certificates: [new Uint8Array(70_000)] })).toThrow(FrameError)
    expect(() => decodeIdentityMessage(new Uint8Array(70_000))).toThrow(FrameError)
  })
})
