/**
 * Length-prefixed framing shared by every conclave stream protocol: each frame is an unsigned varint
 * byte length (as libp2p's own length-prefixed protocols write it) followed by that many payload bytes.
 * A peer that announces a frame over the limit, or writes a malformed prefix, gets a `FrameError`: the
 * caller resets that stream, never the process.
 */

import type { Uint8ArrayList } from 'uint8arraylist'
import { ConclaveError } from '../errors.ts'

/** Default cap on one frame's payload: large enough for a snapshot chunk, small enough to bound memory. */
export const DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024

/** Longest varint prefix accepted: 5 bytes carry up to 2^35, beyond any sane frame limit. */
const MAX_PREFIX_BYTES = 5

/** Bytes that cannot be a valid frame or message: malformed, truncated, oversized or of the wrong shape. */
export class FrameError extends ConclaveError {
  static override readonly name = 'FrameError'
  constructor(message = 'Invalid frame', options?: ErrorOptions) {
    super(message, 'FrameError', 'ERR_INVALID_FRAME', options)
  }
}

/** How many bytes the unsigned varint encoding of `value` (a non-negative safe integer) takes. */
export function varintLength(value: number): number {
  let length = 1
  while (value >= 128) {
    value = Math.floor(value / 128)
    length++
  }
  return length
}

/** Writes `value` as an unsigned varint at `offset`; returns the offset after it. */
export function writeVarint(target: Uint8Array, offset: number, value: number): number {
  while (value >= 128) {
    target[offset++] = (value & 127) | 128
    value = Math.floor(value / 128)
  }
  target[offset++] = value
  return offset
}

/** Checks a frame limit given as an option. */
export function checkMaxFrameBytes(maxFrameBytes: number): number {
  if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < 1 || maxFrameBytes >= 2 ** 35) {
    throw new RangeError(`maxFrameBytes must be an integer in [1, 2^35), got ${maxFrameBytes}`)
  }
  return maxFrameBytes
}

/**
 * Prefixes `payload` with its length. Throws `FrameError` when the payload is over `maxFrameBytes`:
 * the receiver would reset the stream for it, so it must not be sent.
 */
export function encodeFrame(payload: Uint8Array, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Uint8Array {
  if (payload.byteLength > maxFrameBytes) {
    throw new FrameError(`Frame of ${payload.byteLength} bytes is over the limit of ${maxFrameBytes}`)
  }
  const frame = new Uint8Array(varintLength(payload.byteLength) + payload.byteLength)
  frame.set(payload, writeVarint(frame, 0, payload.byteLength))
  return frame
}

/** The payload length announced by the prefix of an encoded frame (which must be well-formed). */
export function framePayloadBytes(frame: Uint8Array): number {
  let length = 0
  let multiplier = 1
  for (let i = 0; i < MAX_PREFIX_BYTES && i < frame.byteLength; i++) {
    length += (frame[i] & 127) * multiplier
    if (frame[i] < 128) break
    multiplier *= 128
  }
  return length
}

/** Joins encoded frames into one buffer, so a batch goes to the stream in one write. */
export function concatFrames(frames: readonly Uint8Array[], totalBytes?: number): Uint8Array {
  if (frames.length === 1) return frames[0]
  let length = totalBytes ?? 0
  if (totalBytes === undefined) for (const frame of frames) length += frame.byteLength
  const joined = new Uint8Array(length)
  let offset = 0
  for (const frame of frames) {
    joined.set(frame, offset)
    offset += frame.byteLength
  }
  return joined
}

/**
 * Splits a byte stream into frames. Push chunks as they arrive, then call `next()` until it returns
 * `undefined`. A frame that lies inside one chunk is returned as a view of it (no copy); one that spans
 * chunks is copied once. Memory stays bounded by the frame limit plus one chunk.
 */
export class FrameDecoder {
  readonly maxFrameBytes: number
  private chunks: Uint8Array[] = []
  /** Read position inside `chunks[0]`. */
  private offset = 0
  private buffered = 0

  constructor(maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {
    this.maxFrameBytes = checkMaxFrameBytes(maxFrameBytes)
  }

  /** Bytes received and not yet returned as frames. */
  get bufferedBytes(): number {
    return this.buffered
  }

  push(data: Uint8Array | Uint8ArrayList): void {
    if (data instanceof Uint8Array) {
      this.pushChunk(data)
    } else {
      for (const chunk of data) this.pushChunk(chunk)
    }
  }

  /**
   * The next complete frame's payload, or `undefined` if more bytes are needed. Throws `FrameError` on a
   * prefix longer than 5 bytes or a length over the limit, as soon as the prefix is readable.
   */
  next(): Uint8Array | undefined {
    if (this.buffered === 0) return undefined
    let first = this.chunks[0]
    let length = 0
    let prefixBytes = 0
    let multiplier = 1
    // Fast path: the prefix lies in the first chunk, as it nearly always does.
    let position = this.offset
    let chunkIndex = 0
    for (;;) {
      if (position === first.byteLength) {
        chunkIndex++
        if (chunkIndex === this.chunks.length) return undefined
        first = this.chunks[chunkIndex]
        position = 0
      }
      const byte = first[position++]
      prefixBytes++
      length += (byte & 127) * multiplier
      if (length > this.maxFrameBytes) {
        throw new FrameError(`Frame length over the limit of ${this.maxFrameBytes} bytes`)
      }
      if (byte < 128) break
      if (prefixBytes === MAX_PREFIX_BYTES) throw new FrameError('Frame length prefix too long')
      multiplier *= 128
    }
    if (this.buffered < prefixBytes + length) return undefined
    this.consume(prefixBytes)
    return this.take(length)
  }

  private pushChunk(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return
    this.chunks.push(chunk)
    this.buffered += chunk.byteLength
  }

  private consume(bytes: number): void {
    this.buffered -= bytes
    while (bytes > 0) {
      const available = this.chunks[0].byteLength - this.offset
      if (bytes < available) {
        this.offset += bytes
        return
      }
      bytes -= available
      this.chunks.shift()
      this.offset = 0
    }
  }

  private take(length: number): Uint8Array {
    if (length === 0) return new Uint8Array(0)
    const first = this.chunks[0]
    if (first.byteLength - this.offset >= length) {
      const payload = first.subarray(this.offset, this.offset + length)
      this.consume(length)
      return payload
    }
    const payload = new Uint8Array(length)
    let written = 0
    while (written < length) {
      const chunk = this.chunks[0]
      const count = Math.min(chunk.byteLength - this.offset, length - written)
      payload.set(chunk.subarray(this.offset, this.offset + count), written)
      written += count
      this.consume(count)
    }
    return payload
  }
}
