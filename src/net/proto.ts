/**
 * Strict protobuf field readers for hand-written codecs in the shape of protons-generated code.
 *
 * protons-runtime's `Reader` is the cursor (`buf`, `pos`, `len`), but its field methods are not used for
 * decoding: they bound reads by the whole buffer rather than the enclosing sub-message, read 64-bit values
 * through a path that mis-sizes non-minimal varints, and decode strings without validating UTF-8. Every
 * reader here takes the `end` of the message being decoded, never reads past it, and throws `FrameError`
 * on anything malformed, so a decoder built on them fails only with `FrameError`.
 */

import type { Reader, Writer } from 'protons-runtime'
import { FrameError } from './frame.ts'

export const WIRE_VARINT = 0
export const WIRE_FIXED64 = 1
export const WIRE_LENGTH_DELIMITED = 2
export const WIRE_FIXED32 = 5

/** A field's tag: field number and wire type, as written before the field. */
export function fieldTag(field: number, wireType: number): number {
  return field * 8 + wireType
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Reads an unsigned varint that must fit a JavaScript safe integer (at most 2^53 - 1). */
export function readVarint(reader: Reader, end: number): number {
  const buf = reader.buf
  let pos = reader.pos
  let value = 0
  let multiplier = 1
  // 8 bytes carry 56 bits: enough for any safe integer, and a longer varint is out of range anyway.
  for (let count = 0; count < 8; count++) {
    if (pos >= end) throw new FrameError('Truncated varint')
    const byte = buf[pos++]
    value += (byte & 127) * multiplier
    if (byte < 128) {
      if (value > Number.MAX_SAFE_INTEGER) throw new FrameError('Integer out of range')
      reader.pos = pos
      return value
    }
    multiplier *= 128
  }
  throw new FrameError('Integer out of range')
}

/** Reads a varint that must be 0 or 1. */
export function readBool(reader: Reader, end: number): boolean {
  const value = readVarint(reader, end)
  if (value > 1) throw new FrameError(`Invalid bool ${value}`)
  return value === 1
}

/** Reads a zig-zag (sint64) varint; the magnitude must stay within 2^52. */
export function readZigZag(reader: Reader, end: number): number {
  const value = readVarint(reader, end)
  return value % 2 === 0 ? value / 2 : -(value + 1) / 2
}

/** Writes `value` (an integer of magnitude below 2^52) zig-zag encoded, as `readZigZag` reads it. */
export function writeZigZag(writer: Writer, value: number): void {
  writer.uint64Number(value >= 0 ? value * 2 : -value * 2 - 1)
}

/** Reads the length of a length-delimited field and returns where its content ends. */
export function readFieldEnd(reader: Reader, end: number): number {
  const length = readVarint(reader, end)
  const fieldEnd = reader.pos + length
  if (fieldEnd > end) throw new FrameError('Truncated field')
  return fieldEnd
}

/** Reads a bytes field into a copy, so decoded values never alias (and retain) network buffers. */
export function readBytes(reader: Reader, end: number): Uint8Array {
  const fieldEnd = readFieldEnd(reader, end)
  const start = reader.pos
  reader.pos = fieldEnd
  return reader.buf.slice(start, fieldEnd)
}

/** Reads a string field; invalid UTF-8 is a `FrameError`. */
export function readString(reader: Reader, end: number): string {
  const fieldEnd = readFieldEnd(reader, end)
  const start = reader.pos
  reader.pos = fieldEnd
  if (fieldEnd === start) return ''
  try {
    return utf8Decoder.decode(reader.buf.subarray(start, fieldEnd))
  } catch (err) {
    throw new FrameError('Invalid UTF-8 in string field', { cause: err })
  }
}

/** Skips a field of an unknown number (forward compatibility). Groups and invalid wire types are rejected. */
export function skipField(reader: Reader, tag: number, end: number): void {
  if (tag < 8) throw new FrameError('Invalid field number 0')
  switch (tag & 7) {
    case WIRE_VARINT: {
      // Unknown varints may be full 64-bit values: skip up to 10 bytes without interpreting them.
      const buf = reader.buf
      let pos = reader.pos
      for (let count = 0; ; count++) {
        if (count === 10 || pos >= end) throw new FrameError('Malformed varint')
        if (buf[pos++] < 128) break
      }
      reader.pos = pos
      return
    }
    case WIRE_FIXED64:
      skipBytes(reader, 8, end)
      return
    case WIRE_LENGTH_DELIMITED:
      reader.pos = readFieldEnd(reader, end)
      return
    case WIRE_FIXED32:
      skipBytes(reader, 4, end)
      return
    default:
      throw new FrameError(`Unsupported wire type ${tag & 7}`)
  }
}

function skipBytes(reader: Reader, count: number, end: number): void {
  if (reader.pos + count > end) throw new FrameError('Truncated field')
  reader.pos += count
}

/** Reads a field tag; field numbers beyond 2^29 - 1 are invalid in protobuf. */
export function readTag(reader: Reader, end: number): number {
  const tag = readVarint(reader, end)
  if (tag > 0xffffffff) throw new FrameError('Invalid field tag')
  return tag
}

/** Converts anything a decoder threw into a `FrameError`, keeping the original as the cause. */
export function asFrameError(err: unknown): FrameError {
  if (err instanceof FrameError) return err
  return new FrameError(`Malformed message: ${err instanceof Error ? err.message : String(err)}`, {
    cause: err,
  })
}
