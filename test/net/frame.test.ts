import fc from 'fast-check'
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import {
  concatFrames,
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  FrameDecoder,
  FrameError,
  varintLength,
  writeVarint,
} from '../../src/net/frame.ts'

function drain(decoder: FrameDecoder): Uint8Array[] {
  const frames: Uint8Array[] = []
  for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) frames.push(frame)
  return frames
}

describe('frames', () => {
  it('encodes varints as libp2p does', () => {
    for (const [value, hex] of [
      [0, '00'],
      [127, '7f'],
      [128, '8001'],
      [300, 'ac02'],
      [DEFAULT_MAX_FRAME_BYTES, '80808002'],
    ] as const) {
      const bytes = new Uint8Array(varintLength(value))
      expect(writeVarint(bytes, 0, value)).toBe(bytes.length)
      expect(Buffer.from(bytes).toString('hex')).toBe(hex)
    }
  })

  it('splits any chunking of a frame sequence back into the same frames', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 10 }),
        fc.boolean(),
        (payloads, cuts, asList) => {
          const stream = concatFrames(payloads.map(payload => encodeFrame(payload)))
          const decoder = new FrameDecoder()
          const frames: Uint8Array[] = []
          let offset = 0
          let cut = 0
          while (offset < stream.length) {
            const end = Math.min(stream.length, offset + cuts[cut++ % cuts.length])
            const chunk = stream.subarray(offset, end)
            // libp2p hands over either form.
            decoder.push(asList ? new Uint8ArrayList(chunk.subarray(0, 1), chunk.subarray(1)) : chunk)
            frames.push(...drain(decoder))
            offset = end
          }
          expect(frames.map(frame => Array.from(frame))).toEqual(payloads.map(payload => Array.from(payload)))
          expect(decoder.bufferedBytes).toBe(0)
        },
      ),
      { numRuns: 500 },
    )
  })

  it('rejects a length over the limit as soon as the prefix is read', () => {
    const decoder = new FrameDecoder(1000)
    const prefix = new Uint8Array(2)
    writeVarint(prefix, 0, 1001)
    decoder.push(prefix)
    expect(() => decoder.next()).toThrow(FrameError)
    // Exactly at the limit is fine.
    const atLimit = new FrameDecoder(1000)
    atLimit.push(encodeFrame(new Uint8Array(1000), 1000))
    expect(atLimit.next()?.byteLength).toBe(1000)
    expect(() => encodeFrame(new Uint8Array(1001), 1000)).toThrow(FrameError)
  })

  it('rejects an over-long length prefix', () => {
    const decoder = new FrameDecoder(2 ** 34)
    decoder.push(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]))
    expect(() => decoder.next()).toThrow(FrameError)
  })

  it('waits for more bytes on a partial prefix or payload', () => {
    const decoder = new FrameDecoder()
    const frame = encodeFrame(new Uint8Array(200).fill(7))
    decoder.push(frame.subarray(0, 1))
    expect(decoder.next()).toBeUndefined()
    decoder.push(frame.subarray(1, 100))
    expect(decoder.next()).toBeUndefined()
    decoder.push(frame.subarray(100))
    expect(decoder.next()).toStrictEqual(new Uint8Array(200).fill(7))
  })

  it('never throws anything but FrameError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.integer({ min: 1, max: 64 }), (bytes, limit) => {
        const decoder = new FrameDecoder(limit)
        decoder.push(bytes)
        try {
          for (const frame of drain(decoder)) expect(frame.byteLength).toBeLessThanOrEqual(limit)
        } catch (err) {
          expect(err).toBeInstanceOf(FrameError)
        }
      }),
    )
  })

  it('validates the limit option', () => {
    expect(() => new FrameDecoder(0)).toThrow(RangeError)
    expect(() => new FrameDecoder(1.5)).toThrow(RangeError)
  })
})
