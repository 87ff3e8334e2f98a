/**
 * Protobuf codec for Raft messages, schema in `raft.proto`. Written by hand in the shape of protons
 * output (a `message()` codec with encode and decode functions) but without namespaces or enums, so Node
 * runs it as plain TypeScript. Decoding is the Raft hot path: one pass over the bytes into locals, no
 * closures or intermediate objects, then one object literal of the message's exact shape.
 *
 * Both directions validate: `encode*` refuses a message the decoder would reject, and `decode*` returns a
 * well-formed `Message` or throws `FrameError`, nothing else.
 */

import type { Codec, DecodeFunction, EncodeFunction, EncodeOptions, Reader, Writer } from 'protons-runtime'
import { writer as createWriter, decodeMessage, encodeMessage, message } from 'protons-runtime'
import type {
  AppendRequest,
  Config,
  Entry,
  EntryType,
  Message,
  MessageType,
  NodeId,
  ReadContext,
  SnapshotMeta,
} from '../raft/types.ts'
import { DEFAULT_MAX_FRAME_BYTES, FrameError, framePayloadBytes } from './frame.ts'
import {
  asFrameError,
  fieldTag,
  WIRE_LENGTH_DELIMITED as LEN,
  readBool,
  readBytes,
  readFieldEnd,
  readString,
  readTag,
  readVarint,
  readZigZag,
  skipField,
  WIRE_VARINT as VARINT,
  writeZigZag,
} from './proto.ts'

/** Wire codes of `MessageType`, index = code (0 is invalid). */
const MESSAGE_TYPES: readonly (MessageType | undefined)[] = [
  undefined,
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

const MESSAGE_TYPE_CODES: ReadonlyMap<string, number> = new Map(
  MESSAGE_TYPES.flatMap((type, code) => (type === undefined ? [] : [[type, code] as const])),
)

const ENTRY_NORMAL = 1
const ENTRY_CONFIG = 2

// RaftMessage field numbers (raft.proto).
const F_TYPE = 1
const F_FROM = 2
const F_TO = 3
const F_TERM = 4
const F_PREV_LOG_INDEX = 5
const F_PREV_LOG_TERM = 6
const F_ENTRIES = 7
const F_LEADER_COMMIT = 8
const F_SUCCESS = 9
const F_INDEX = 10
const F_HINT_INDEX = 11
const F_HINT_TERM = 12
const F_CONTEXT = 13
const F_GRANTED = 14
const F_LAST_LOG_INDEX = 15
const F_LAST_LOG_TERM = 16
const F_TRANSFER = 17
const F_META = 18
const F_OFFSET = 19
const F_DATA = 20
const F_DONE = 21
const F_COMMIT_ONLY = 22
const F_NOTIFY = 23
const LAST_FIELD = F_NOTIFY

// Tags: field number and wire type, the values the decoder switches on.
const T_TYPE = fieldTag(F_TYPE, VARINT)
const T_FROM = fieldTag(F_FROM, LEN)
const T_TO = fieldTag(F_TO, LEN)
const T_TERM = fieldTag(F_TERM, VARINT)
const T_PREV_LOG_INDEX = fieldTag(F_PREV_LOG_INDEX, VARINT)
const T_PREV_LOG_TERM = fieldTag(F_PREV_LOG_TERM, VARINT)
const T_ENTRIES = fieldTag(F_ENTRIES, LEN)
const T_LEADER_COMMIT = fieldTag(F_LEADER_COMMIT, VARINT)
const T_SUCCESS = fieldTag(F_SUCCESS, VARINT)
const T_INDEX = fieldTag(F_INDEX, VARINT)
const T_HINT_INDEX = fieldTag(F_HINT_INDEX, VARINT)
const T_HINT_TERM = fieldTag(F_HINT_TERM, VARINT)
const T_CONTEXT = fieldTag(F_CONTEXT, LEN)
const T_GRANTED = fieldTag(F_GRANTED, VARINT)
const T_LAST_LOG_INDEX = fieldTag(F_LAST_LOG_INDEX, VARINT)
const T_LAST_LOG_TERM = fieldTag(F_LAST_LOG_TERM, VARINT)
const T_TRANSFER = fieldTag(F_TRANSFER, VARINT)
const T_META = fieldTag(F_META, LEN)
const T_OFFSET = fieldTag(F_OFFSET, VARINT)
const T_DATA = fieldTag(F_DATA, LEN)
const T_DONE = fieldTag(F_DONE, VARINT)
const T_COMMIT_ONLY = fieldTag(F_COMMIT_ONLY, VARINT)
const T_NOTIFY = fieldTag(F_NOTIFY, LEN)

// Entry, SnapshotMeta and Config tags.
const T_ENTRY_TERM = fieldTag(1, VARINT)
const T_ENTRY_INDEX = fieldTag(2, VARINT)
const T_ENTRY_TYPE = fieldTag(3, VARINT)
const T_ENTRY_DATA = fieldTag(4, LEN)
const T_META_INDEX = fieldTag(1, VARINT)
const T_META_TERM = fieldTag(2, VARINT)
const T_META_CONFIG = fieldTag(3, LEN)
const T_CONFIG_VOTER = fieldTag(1, LEN)
const T_CONFIG_NON_VOTER = fieldTag(2, LEN)

function bits(...fields: number[]): number {
  let mask = 0
  for (const field of fields) mask |= 1 << field
  return mask
}

const BASE = bits(F_TYPE, F_FROM, F_TO, F_TERM)
const VOTE_REQUEST = BASE | bits(F_LAST_LOG_INDEX, F_LAST_LOG_TERM, F_TRANSFER)
const VOTE_RESPONSE = BASE | bits(F_GRANTED)
const APPEND = BASE | bits(F_PREV_LOG_INDEX, F_PREV_LOG_TERM, F_LEADER_COMMIT)
const READ_INDEX_RESPONSE = BASE | bits(F_CONTEXT, F_INDEX)

/** Per type code: fields that must be present. */
const REQUIRED_FIELDS: readonly number[] = [
  0,
  VOTE_REQUEST,
  VOTE_RESPONSE,
  VOTE_REQUEST,
  VOTE_RESPONSE,
  APPEND,
  BASE | bits(F_SUCCESS, F_INDEX, F_HINT_INDEX, F_HINT_TERM),
  BASE | bits(F_LEADER_COMMIT, F_CONTEXT),
  BASE | bits(F_CONTEXT),
  BASE | bits(F_META, F_OFFSET, F_DATA, F_DONE),
  BASE | bits(F_INDEX, F_OFFSET, F_DONE),
  BASE,
  BASE | bits(F_CONTEXT),
  READ_INDEX_RESPONSE,
]

/** Per type code: known fields that may be present (required plus optional ones). */
const ALLOWED_FIELDS: readonly number[] = REQUIRED_FIELDS.map((mask, code) =>
  MESSAGE_TYPES[code] === 'append' ? mask | bits(F_ENTRIES, F_COMMIT_ONLY, F_NOTIFY) : mask,
)

// ---------------------------------------------------------------------------------------------------------
// Encoding

function checkIndex(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new FrameError(`${name} must be a non-negative safe integer, got ${value}`)
  }
}

function checkNodeId(value: NodeId, name: string): void {
  if (typeof value !== 'string' || value.length === 0 || !value.isWellFormed()) {
    throw new FrameError(`${name} must be a non-empty well-formed string`)
  }
}

function checkString(value: string, name: string): void {
  if (typeof value !== 'string' || !value.isWellFormed()) {
    throw new FrameError(`${name} must be a well-formed string`)
  }
}

function checkBool(value: boolean, name: string): void {
  if (typeof value !== 'boolean') throw new FrameError(`${name} must be a boolean`)
}

function checkBytes(value: Uint8Array, name: string): void {
  if (!(value instanceof Uint8Array)) throw new FrameError(`${name} must be a Uint8Array`)
}

function writeUint(w: Writer, tag: number, value: number, name: string): void {
  checkIndex(value, name)
  w.uint32(tag)
  w.uint64Number(value)
}

function writeBool(w: Writer, tag: number, value: boolean, name: string): void {
  checkBool(value, name)
  w.uint32(tag)
  w.uint32(value ? 1 : 0)
}

function writeContext(w: Writer, value: ReadContext): void {
  checkString(value, 'context')
  w.uint32(T_CONTEXT)
  w.string(value)
}

const encodeEntry: EncodeFunction<Entry> = (entry, w, opts = {}) => {
  if (opts.lengthDelimited !== false) w.fork()
  writeUint(w, T_ENTRY_TERM, entry.term, 'entry.term')
  writeUint(w, T_ENTRY_INDEX, entry.index, 'entry.index')
  const typeCode = entry.type === 'normal' ? ENTRY_NORMAL : entry.type === 'config' ? ENTRY_CONFIG : 0
  if (typeCode === 0) throw new FrameError(`Unknown entry type ${String(entry.type)}`)
  w.uint32(T_ENTRY_TYPE)
  w.uint32(typeCode)
  checkBytes(entry.data, 'entry.data')
  w.uint32(T_ENTRY_DATA)
  w.bytes(entry.data)
  if (opts.lengthDelimited !== false) w.ldelim()
}

const encodeConfig: EncodeFunction<Config> = (config, w, opts = {}) => {
  checkConfig(config.voters, config.nonVoters)
  if (opts.lengthDelimited !== false) w.fork()
  for (const voter of config.voters) {
    w.uint32(T_CONFIG_VOTER)
    w.string(voter)
  }
  for (const nonVoter of config.nonVoters) {
    w.uint32(T_CONFIG_NON_VOTER)
    w.string(nonVoter)
  }
  if (opts.lengthDelimited !== false) w.ldelim()
}

const encodeSnapshotMeta: EncodeFunction<SnapshotMeta> = (meta, w, opts = {}) => {
  if (opts.lengthDelimited !== false) w.fork()
  writeUint(w, T_META_INDEX, meta.index, 'meta.index')
  writeUint(w, T_META_TERM, meta.term, 'meta.term')
  w.uint32(T_META_CONFIG)
  encodeConfig(meta.config, w)
  if (opts.lengthDelimited !== false) w.ldelim()
}

const encodeRaftMessageFields: EncodeFunction<Message> = (msg, w, opts: EncodeOptions = {}) => {
  const typeCode = MESSAGE_TYPE_CODES.get(msg.type)
  if (typeCode === undefined) throw new FrameError(`Unknown message type ${String(msg.type)}`)
  checkNodeId(msg.from, 'from')
  checkNodeId(msg.to, 'to')
  if (opts.lengthDelimited !== false) w.fork()
  w.uint32(T_TYPE)
  w.uint32(typeCode)
  w.uint32(T_FROM)
  w.string(msg.from)
  w.uint32(T_TO)
  w.string(msg.to)
  writeUint(w, T_TERM, msg.term, 'term')
  switch (msg.type) {
    case 'vote':
    case 'preVote':
      writeUint(w, T_LAST_LOG_INDEX, msg.lastLogIndex, 'lastLogIndex')
      writeUint(w, T_LAST_LOG_TERM, msg.lastLogTerm, 'lastLogTerm')
      writeBool(w, T_TRANSFER, msg.transfer, 'transfer')
      break
    case 'voteResponse':
    case 'preVoteResponse':
      writeBool(w, T_GRANTED, msg.granted, 'granted')
      break
    case 'append': {
      writeUint(w, T_PREV_LOG_INDEX, msg.prevLogIndex, 'prevLogIndex')
      writeUint(w, T_PREV_LOG_TERM, msg.prevLogTerm, 'prevLogTerm')
      const entries = msg.entries
      if (!Array.isArray(entries)) throw new FrameError('entries must be an array')
      // Before leaderCommit, so that the last field is a required one: any truncation is refused.
      if (msg.commitOnly !== undefined && msg.commitOnly !== false) {
        if (entries.length > 0) throw new FrameError('A commitOnly append carries no entries')
        writeBool(w, T_COMMIT_ONLY, msg.commitOnly, 'commitOnly')
      }
      if (msg.notify !== undefined) {
        if (!Array.isArray(msg.notify)) throw new FrameError('notify must be an array')
        for (const peer of msg.notify) {
          checkNodeId(peer, 'notify')
          w.uint32(T_NOTIFY)
          w.string(peer)
        }
      }
      for (let i = 0; i < entries.length; i++) {
        if (entries[i].index !== msg.prevLogIndex + 1 + i) {
          throw new FrameError(`Entry ${i} has index ${entries[i].index}, not prevLogIndex + ${1 + i}`)
        }
        w.uint32(T_ENTRIES)
        encodeEntry(entries[i], w)
      }
      writeUint(w, T_LEADER_COMMIT, msg.leaderCommit, 'leaderCommit')
      break
    }
    case 'appendResponse':
      writeBool(w, T_SUCCESS, msg.success, 'success')
      writeUint(w, T_INDEX, msg.index, 'index')
      writeUint(w, T_HINT_INDEX, msg.hintIndex, 'hintIndex')
      writeUint(w, T_HINT_TERM, msg.hintTerm, 'hintTerm')
      break
    case 'heartbeat':
      writeUint(w, T_LEADER_COMMIT, msg.leaderCommit, 'leaderCommit')
      writeContext(w, msg.context)
      break
    case 'heartbeatResponse':
    case 'readIndex':
      writeContext(w, msg.context)
      break
    case 'snapshot':
      w.uint32(T_META)
      encodeSnapshotMeta(msg.meta, w)
      checkOffset(msg.offset, 0)
      w.uint32(T_OFFSET)
      writeZigZag(w, msg.offset)
      checkBytes(msg.data, 'data')
      w.uint32(T_DATA)
      w.bytes(msg.data)
      writeBool(w, T_DONE, msg.done, 'done')
      break
    case 'snapshotResponse':
      writeUint(w, T_INDEX, msg.index, 'index')
      checkOffset(msg.offset, -1)
      w.uint32(T_OFFSET)
      writeZigZag(w, msg.offset)
      writeBool(w, T_DONE, msg.done, 'done')
      break
    case 'timeoutNow':
      break
    case 'readIndexResponse':
      writeContext(w, msg.context)
      writeUint(w, T_INDEX, msg.index, 'index')
      break
  }
  if (opts.lengthDelimited !== false) w.ldelim()
}

/** Snapshot offsets travel zig-zag encoded, so their magnitude must stay below 2^52. */
const MAX_OFFSET = 2 ** 52

function checkOffset(offset: number, min: number): void {
  if (!Number.isSafeInteger(offset) || offset < min || offset >= MAX_OFFSET) {
    throw new FrameError(`offset must be an integer in [${min}, 2^52), got ${offset}`)
  }
}

function checkConfig(voters: readonly NodeId[], nonVoters: readonly NodeId[]): void {
  if (!Array.isArray(voters) || !Array.isArray(nonVoters)) throw new FrameError('Config lists must be arrays')
  const seen = new Set<NodeId>()
  for (const list of [voters, nonVoters]) {
    for (const node of list) {
      checkNodeId(node, 'config node')
      if (seen.has(node)) throw new FrameError(`Node ${node} appears twice in a config`)
      seen.add(node)
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

function missingField(what: string): FrameError {
  return new FrameError(`${what} lacks a required field`)
}

function checkEnd(reader: Reader, end: number): void {
  if (reader.pos !== end) throw new FrameError('Truncated message')
}

/** A known field with the wrong wire type is rejected; an unknown field number is skipped. */
function unexpectedField(reader: Reader, tag: number, end: number, lastKnownField: number): void {
  const field = Math.floor(tag / 8)
  if (field >= 1 && field <= lastKnownField) {
    throw new FrameError(`Field ${field} has wire type ${tag & 7}`)
  }
  skipField(reader, tag, end)
}

function decodeEntry(reader: Reader, end: number): Entry {
  let term = 0
  let index = 0
  let typeCode = 0
  let data: Uint8Array | undefined
  let seen = 0
  while (reader.pos < end) {
    const tag = readTag(reader, end)
    switch (tag) {
      case T_ENTRY_TERM:
        term = readVarint(reader, end)
        seen |= 1
        break
      case T_ENTRY_INDEX:
        index = readVarint(reader, end)
        seen |= 2
        break
      case T_ENTRY_TYPE:
        typeCode = readVarint(reader, end)
        seen |= 4
        break
      case T_ENTRY_DATA:
        data = readBytes(reader, end)
        seen |= 8
        break
      default:
        unexpectedField(reader, tag, end, 4)
    }
  }
  checkEnd(reader, end)
  if (seen !== 15 || data === undefined) throw missingField('Entry')
  let type: EntryType
  if (typeCode === ENTRY_NORMAL) type = 'normal'
  else if (typeCode === ENTRY_CONFIG) type = 'config'
  else throw new FrameError(`Unknown entry type ${typeCode}`)
  return { term, index, type, data }
}

function decodeConfig(reader: Reader, end: number): Config {
  const voters: NodeId[] = []
  const nonVoters: NodeId[] = []
  while (reader.pos < end) {
    const tag = readTag(reader, end)
    switch (tag) {
      case T_CONFIG_VOTER:
        voters.push(readString(reader, end))
        break
      case T_CONFIG_NON_VOTER:
        nonVoters.push(readString(reader, end))
        break
      default:
        unexpectedField(reader, tag, end, 2)
    }
  }
  checkEnd(reader, end)
  checkConfig(voters, nonVoters)
  return { voters, nonVoters }
}

function decodeSnapshotMeta(reader: Reader, end: number): SnapshotMeta {
  let index = 0
  let term = 0
  let config: Config | undefined
  let seen = 0
  while (reader.pos < end) {
    const tag = readTag(reader, end)
    switch (tag) {
      case T_META_INDEX:
        index = readVarint(reader, end)
        seen |= 1
        break
      case T_META_TERM:
        term = readVarint(reader, end)
        seen |= 2
        break
      case T_META_CONFIG:
        config = decodeConfig(reader, readFieldEnd(reader, end))
        break
      default:
        unexpectedField(reader, tag, end, 3)
    }
  }
  checkEnd(reader, end)
  if (seen !== 3 || config === undefined) throw missingField('SnapshotMeta')
  return { index, term, config }
}

const decodeRaftMessageFields: DecodeFunction<Message> = (reader, length) => {
  const end = length === undefined ? reader.len : reader.pos + length
  if (end > reader.len) throw new FrameError('Truncated message')
  let seen = 0
  let typeCode = 0
  let from = ''
  let to = ''
  let term = 0
  let prevLogIndex = 0
  let prevLogTerm = 0
  let entries: Entry[] | undefined
  let leaderCommit = 0
  let success = false
  let index = 0
  let hintIndex = 0
  let hintTerm = 0
  let context = ''
  let granted = false
  let lastLogIndex = 0
  let lastLogTerm = 0
  let transfer = false
  let meta: SnapshotMeta | undefined
  let offset = 0
  let data: Uint8Array | undefined
  let done = false
  let commitOnly = false
  let notify: NodeId[] | undefined
  while (reader.pos < end) {
    const tag = readTag(reader, end)
    let field: number
    switch (tag) {
      case T_TYPE:
        typeCode = readVarint(reader, end)
        field = F_TYPE
        break
      case T_FROM:
        from = readString(reader, end)
        field = F_FROM
        break
      case T_TO:
        to = readString(reader, end)
        field = F_TO
        break
      case T_TERM:
        term = readVarint(reader, end)
        field = F_TERM
        break
      case T_PREV_LOG_INDEX:
        prevLogIndex = readVarint(reader, end)
        field = F_PREV_LOG_INDEX
        break
      case T_PREV_LOG_TERM:
        prevLogTerm = readVarint(reader, end)
        field = F_PREV_LOG_TERM
        break
      case T_ENTRIES:
        if (entries === undefined) entries = []
        entries.push(decodeEntry(reader, readFieldEnd(reader, end)))
        field = F_ENTRIES
        break
      case T_LEADER_COMMIT:
        leaderCommit = readVarint(reader, end)
        field = F_LEADER_COMMIT
        break
      case T_SUCCESS:
        success = readBool(reader, end)
        field = F_SUCCESS
        break
      case T_INDEX:
        index = readVarint(reader, end)
        field = F_INDEX
        break
      case T_HINT_INDEX:
        hintIndex = readVarint(reader, end)
        field = F_HINT_INDEX
        break
      case T_HINT_TERM:
        hintTerm = readVarint(reader, end)
        field = F_HINT_TERM
        break
      case T_CONTEXT:
        context = readString(reader, end)
        field = F_CONTEXT
        break
      case T_GRANTED:
        granted = readBool(reader, end)
        field = F_GRANTED
        break
      case T_LAST_LOG_INDEX:
        lastLogIndex = readVarint(reader, end)
        field = F_LAST_LOG_INDEX
        break
      case T_LAST_LOG_TERM:
        lastLogTerm = readVarint(reader, end)
        field = F_LAST_LOG_TERM
        break
      case T_TRANSFER:
        transfer = readBool(reader, end)
        field = F_TRANSFER
        break
      case T_META:
        meta = decodeSnapshotMeta(reader, readFieldEnd(reader, end))
        field = F_META
        break
      case T_OFFSET:
        offset = readZigZag(reader, end)
        field = F_OFFSET
        break
      case T_DATA:
        data = readBytes(reader, end)
        field = F_DATA
        break
      case T_DONE:
        done = readBool(reader, end)
        field = F_DONE
        break
      case T_COMMIT_ONLY:
        commitOnly = readBool(reader, end)
        field = F_COMMIT_ONLY
        break
      case T_NOTIFY: {
        const peer = readString(reader, end)
        if (peer.length === 0) throw new FrameError('Empty node id in notify')
        if (notify === undefined) notify = []
        notify.push(peer)
        field = F_NOTIFY
        break
      }
      default:
        unexpectedField(reader, tag, end, LAST_FIELD)
        continue
    }
    seen |= 1 << field
  }
  checkEnd(reader, end)

  const type = MESSAGE_TYPES[typeCode]
  if (type === undefined) {
    throw new FrameError((seen & (1 << F_TYPE)) === 0 ? 'Message lacks a type' : `Unknown type ${typeCode}`)
  }
  const required = REQUIRED_FIELDS[typeCode]
  if ((seen & required) !== required) throw missingField(`Message of type ${type}`)
  if ((seen & ~ALLOWED_FIELDS[typeCode]) !== 0)
    throw new FrameError(`Message of type ${type} has foreign fields`)
  if (from.length === 0 || to.length === 0) throw new FrameError('Empty from or to')

  switch (type) {
    case 'vote':
    case 'preVote':
      return { type, from, to, term, lastLogIndex, lastLogTerm, transfer }
    case 'voteResponse':
    case 'preVoteResponse':
      return { type, from, to, term, granted }
    case 'append': {
      const list = entries ?? []
      for (let i = 0; i < list.length; i++) {
        if (list[i].index !== prevLogIndex + 1 + i) throw new FrameError('Entries are not contiguous')
      }
      const append: AppendRequest = {
        type,
        from,
        to,
        term,
        prevLogIndex,
        prevLogTerm,
        entries: list,
        leaderCommit,
      }
      if (commitOnly) {
        if (list.length > 0) throw new FrameError('A commitOnly append carries no entries')
        append.commitOnly = true
      }
      if (notify !== undefined) append.notify = notify
      return append
    }
    case 'appendResponse':
      return { type, from, to, term, success, index, hintIndex, hintTerm }
    case 'heartbeat':
      return { type, from, to, term, leaderCommit, context }
    case 'heartbeatResponse':
    case 'readIndex':
      return { type, from, to, term, context }
    case 'snapshot':
      if (offset < 0) throw new FrameError(`Negative snapshot offset ${offset}`)
      return { type, from, to, term, meta: meta!, offset, data: data!, done }
    case 'snapshotResponse':
      if (offset < -1) throw new FrameError(`Snapshot response offset ${offset} below -1`)
      return { type, from, to, term, index, offset, done }
    case 'timeoutNow':
      return { type, from, to, term }
    case 'readIndexResponse':
      return { type, from, to, term, context, index }
  }
}

/** The protons codec of the `RaftMessage` envelope (raft.proto). Its stream decoder yields one whole message. */
export const raftMessageCodec: Codec<Message, Message> = message<Message, Message>(
  encodeRaftMessageFields,
  decodeRaftMessageFields,
  function* (reader, length, prefix) {
    yield { field: prefix, value: decodeRaftMessageFields(reader, length) }
  },
)

/** Encodes one Raft message. Throws `FrameError` for a message the decoder would reject. */
export function encodeRaftMessage(msg: Message): Uint8Array {
  return encodeMessage(msg, raftMessageCodec)
}

/**
 * Encodes one Raft message as a length-prefixed frame, ready for a stream, in one allocation.
 * Throws `FrameError` for an invalid message or one over `maxFrameBytes`.
 */
export function encodeRaftFrame(msg: Message, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Uint8Array {
  const w = createWriter()
  raftMessageCodec.encode(msg, w, { lengthDelimited: true })
  const frame = w.finish()
  const payloadBytes = framePayloadBytes(frame)
  if (payloadBytes > maxFrameBytes) {
    throw new FrameError(`Message of ${payloadBytes} bytes is over the frame limit of ${maxFrameBytes}`)
  }
  return frame
}

/** Decodes one Raft message: a well-formed `Message`, or a `FrameError`. */
export function decodeRaftMessage(bytes: Uint8Array): Message {
  try {
    return decodeMessage(bytes, raftMessageCodec)
  } catch (err) {
    throw asFrameError(err)
  }
}
