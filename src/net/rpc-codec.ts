/**
 * Codec of `RpcFrame` (`rpc.proto`): the envelope of conclave's request/response protocols. Same rules as
 * the Raft codec: the encoder refuses what the decoder would reject, the decoder throws only `FrameError`.
 *
 * A request may be one-way (`oneWay`, field 6): no answer is wanted. Earlier versions skip the unknown field
 * and answer it like any request; the caller drops that answer (its id, 0, names no call).
 */

import type { Codec, DecodeFunction, EncodeFunction } from 'protons-runtime'
import { writer as createWriter, decodeMessage, message } from 'protons-runtime'
import { DEFAULT_MAX_FRAME_BYTES, FrameError, framePayloadBytes } from './frame.ts'
import {
  asFrameError,
  fieldTag,
  WIRE_LENGTH_DELIMITED as LEN,
  readBool,
  readBytes,
  readString,
  readTag,
  readVarint,
  skipField,
  WIRE_VARINT as VARINT,
} from './proto.ts'

export type RpcFrame =
  | { kind: 'request'; id: number; body: Uint8Array; oneWay?: true }
  | { kind: 'response'; id: number; body: Uint8Array }
  | { kind: 'error'; id: number; errorMessage: string; errorName: string }

const KIND_REQUEST = 1
const KIND_RESPONSE = 2
const KIND_ERROR = 3

const T_ID = fieldTag(1, VARINT)
const T_KIND = fieldTag(2, VARINT)
const T_BODY = fieldTag(3, LEN)
const T_ERROR_MESSAGE = fieldTag(4, LEN)
const T_ERROR_NAME = fieldTag(5, LEN)
const T_ONE_WAY = fieldTag(6, VARINT)

const HAS_ID = 1
const HAS_KIND = 2
const HAS_BODY = 4
const HAS_ERROR_MESSAGE = 8
const HAS_ERROR_NAME = 16
const HAS_ONE_WAY = 32

const encodeRpcFrameFields: EncodeFunction<RpcFrame> = (frame, w, opts = {}) => {
  if (!Number.isSafeInteger(frame.id) || frame.id < 0) throw new FrameError(`Invalid RPC id ${frame.id}`)
  if (opts.lengthDelimited !== false) w.fork()
  w.uint32(T_ID)
  w.uint64Number(frame.id)
  w.uint32(T_KIND)
  switch (frame.kind) {
    case 'request':
    case 'response':
      if (!(frame.body instanceof Uint8Array)) throw new FrameError('RPC body must be a Uint8Array')
      w.uint32(frame.kind === 'request' ? KIND_REQUEST : KIND_RESPONSE)
      w.uint32(T_BODY)
      w.bytes(frame.body)
      if (frame.kind === 'request' && frame.oneWay === true) {
        w.uint32(T_ONE_WAY)
        w.uint32(1)
      }
      break
    case 'error':
      if (!frame.errorMessage.isWellFormed() || !frame.errorName.isWellFormed()) {
        throw new FrameError('RPC error text must be well-formed')
      }
      w.uint32(KIND_ERROR)
      w.uint32(T_ERROR_MESSAGE)
      w.string(frame.errorMessage)
      w.uint32(T_ERROR_NAME)
      w.string(frame.errorName)
      break
    default:
      throw new FrameError('Unknown RPC frame kind')
  }
  if (opts.lengthDelimited !== false) w.ldelim()
}

const decodeRpcFrameFields: DecodeFunction<RpcFrame> = (reader, length) => {
  const end = length === undefined ? reader.len : reader.pos + length
  if (end > reader.len) throw new FrameError('Truncated message')
  let seen = 0
  let id = 0
  let kind = 0
  let body: Uint8Array | undefined
  let errorMessage = ''
  let errorName = ''
  let oneWay = false
  while (reader.pos < end) {
    const tag = readTag(reader, end)
    switch (tag) {
      case T_ID:
        id = readVarint(reader, end)
        seen |= HAS_ID
        break
      case T_KIND:
        kind = readVarint(reader, end)
        seen |= HAS_KIND
        break
      case T_BODY:
        body = readBytes(reader, end)
        seen |= HAS_BODY
        break
      case T_ERROR_MESSAGE:
        errorMessage = readString(reader, end)
        seen |= HAS_ERROR_MESSAGE
        break
      case T_ERROR_NAME:
        errorName = readString(reader, end)
        seen |= HAS_ERROR_NAME
        break
      case T_ONE_WAY:
        oneWay = readBool(reader, end)
        seen |= HAS_ONE_WAY
        break
      default: {
        const field = Math.floor(tag / 8)
        if (field >= 1 && field <= 6) throw new FrameError(`Field ${field} has wire type ${tag & 7}`)
        skipField(reader, tag, end)
      }
    }
  }
  if (reader.pos !== end) throw new FrameError('Truncated message')
  if ((seen & (HAS_ID | HAS_KIND)) !== (HAS_ID | HAS_KIND)) throw new FrameError('RPC frame lacks id or kind')
  switch (kind) {
    case KIND_REQUEST:
    case KIND_RESPONSE:
      if (body === undefined || (seen & (HAS_ERROR_MESSAGE | HAS_ERROR_NAME)) !== 0) {
        throw new FrameError('RPC request or response needs a body and no error')
      }
      if (kind === KIND_RESPONSE) {
        if ((seen & HAS_ONE_WAY) !== 0) throw new FrameError('An RPC response cannot be one-way')
        return { kind: 'response', id, body }
      }
      return oneWay ? { kind: 'request', id, body, oneWay: true } : { kind: 'request', id, body }
    case KIND_ERROR:
      if (
        (seen & (HAS_ERROR_MESSAGE | HAS_ERROR_NAME)) !== (HAS_ERROR_MESSAGE | HAS_ERROR_NAME) ||
        body ||
        (seen & HAS_ONE_WAY) !== 0
      ) {
        throw new FrameError('RPC error needs a message and a name, and no body')
      }
      return { kind: 'error', id, errorMessage, errorName }
    default:
      throw new FrameError(`Unknown RPC frame kind ${kind}`)
  }
}

export const rpcFrameCodec: Codec<RpcFrame, RpcFrame> = message<RpcFrame, RpcFrame>(
  encodeRpcFrameFields,
  decodeRpcFrameFields,
  function* (reader, length, prefix) {
    yield { field: prefix, value: decodeRpcFrameFields(reader, length) }
  },
)

/** Encodes an RPC frame with its length prefix. Throws `FrameError` if invalid or over `maxFrameBytes`. */
export function encodeRpcFrame(frame: RpcFrame, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Uint8Array {
  const w = createWriter()
  rpcFrameCodec.encode(frame, w, { lengthDelimited: true })
  const bytes = w.finish()
  const payloadBytes = framePayloadBytes(bytes)
  if (payloadBytes > maxFrameBytes) {
    throw new FrameError(`RPC frame of ${payloadBytes} bytes is over the limit of ${maxFrameBytes}`)
  }
  return bytes
}

/** Decodes one RPC frame's payload: a well-formed `RpcFrame`, or a `FrameError`. */
export function decodeRpcFrame(bytes: Uint8Array): RpcFrame {
  try {
    return decodeMessage(bytes, rpcFrameCodec)
  } catch (err) {
    throw asFrameError(err)
  }
}
