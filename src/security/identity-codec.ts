/**
 * Messages of the identity protocol (`/conclave/identity/1.0.0`), as protobuf:
 *
 * ```proto
 * message IdentityMessage {
 *   bytes nonce = 1;                  // the sender's challenge
 *   repeated bytes certificates = 2;  // the sender's X509-SVID chain, DER, leaf first
 *   bytes signature = 3;              // proof of the SVID key over (domain, sender peer id, receiver's nonce)
 *   string error = 4;                 // the sender refuses the receiver's identity: why
 * }
 * ```
 *
 * Every field is optional on the wire; which ones a step needs is the protocol's business. The decoder
 * throws only `FrameError`.
 */

import { reader as createReader, writer as createWriter, type Reader, type Writer } from 'protons-runtime'
import { FrameError } from '../net/frame.ts'
import {
  asFrameError,
  fieldTag,
  WIRE_LENGTH_DELIMITED as LEN,
  readBytes,
  readString,
  readTag,
  skipField,
} from '../net/proto.ts'

export interface IdentityMessage {
  nonce?: Uint8Array
  certificates: Uint8Array[]
  signature?: Uint8Array
  error?: string
}

/** Largest identity message: a few certificates of a few KiB each. */
export const MAX_IDENTITY_MESSAGE_BYTES = 64 * 1024
export const MAX_CERTIFICATES = 8

const T_NONCE = fieldTag(1, LEN)
const T_CERTIFICATE = fieldTag(2, LEN)
const T_SIGNATURE = fieldTag(3, LEN)
const T_ERROR = fieldTag(4, LEN)

function writeFields(value: IdentityMessage, w: Writer): void {
  if (value.nonce !== undefined) {
    w.uint32(T_NONCE)
    w.bytes(value.nonce)
  }
  for (const certificate of value.certificates) {
    w.uint32(T_CERTIFICATE)
    w.bytes(certificate)
  }
  if (value.signature !== undefined) {
    w.uint32(T_SIGNATURE)
    w.bytes(value.signature)
  }
  if (value.error !== undefined) {
    w.uint32(T_ERROR)
    w.string(value.error)
  }
}

function readFields(reader: Reader): IdentityMessage {
  const end = reader.len
  const result: IdentityMessage = { certificates: [] }
  while (reader.pos < end) {
    const tag = readTag(reader, end)
    switch (tag) {
      case T_NONCE:
        result.nonce = readBytes(reader, end)
        break
      case T_CERTIFICATE:
        if (result.certificates.length === MAX_CERTIFICATES) {
          throw new FrameError(`More than ${MAX_CERTIFICATES} certificates`)
        }
        result.certificates.push(readBytes(reader, end))
        break
      case T_SIGNATURE:
        result.signature = readBytes(reader, end)
        break
      case T_ERROR:
        result.error = readString(reader, end)
        break
      default: {
        const field = Math.floor(tag / 8)
        if (field >= 1 && field <= 4) throw new FrameError(`Field ${field} has wire type ${tag & 7}`)
        skipField(reader, tag, end)
      }
    }
  }
  return result
}

/** Encodes a message without a length prefix (the stream adds one). */
export function encodeIdentityMessage(value: IdentityMessage): Uint8Array {
  if (value.certificates.length > MAX_CERTIFICATES) {
    throw new FrameError(`More than ${MAX_CERTIFICATES} certificates`)
  }
  if (value.error !== undefined && !value.error.isWellFormed()) throw new FrameError('Malformed error text')
  const w = createWriter()
  writeFields(value, w)
  const bytes = w.finish()
  if (bytes.byteLength > MAX_IDENTITY_MESSAGE_BYTES) {
    throw new FrameError(
      `Identity message of ${bytes.byteLength} bytes is over ${MAX_IDENTITY_MESSAGE_BYTES}`,
    )
  }
  return bytes
}

/** Decodes one message; anything malformed is a `FrameError`. */
export function decodeIdentityMessage(bytes: Uint8Array): IdentityMessage {
  if (bytes.byteLength > MAX_IDENTITY_MESSAGE_BYTES) {
    throw new FrameError(
      `Identity message of ${bytes.byteLength} bytes is over ${MAX_IDENTITY_MESSAGE_BYTES}`,
    )
  }
  try {
    return readFields(createReader(bytes))
  } catch (err) {
    throw asFrameError(err)
  }
}
