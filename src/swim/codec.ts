/**
 * Protobuf codec of SWIM messages, schema in `swim.proto`, written by hand (protons-runtime's writer for
 * encoding, a strict reader here for decoding) without namespaces or enums.
 *
 * Both directions validate: `encodeSwimMessage` refuses a message the decoder would reject, and
 * `decodeSwimMessage` returns a well-formed `SwimMessage` within `SWIM_LIMITS` or throws `SwimCodecError`,
 * nothing else. Every read is bounded by the enclosing sub-message; strings must be valid UTF-8; a field a
 * message type does not use, a missing required field or a repeated singular field is an error. Unknown
 * field numbers are skipped, for forward compatibility.
 */

import { writer as createWriter, type Writer } from 'protons-runtime'
import { ConclaveError } from '../errors.ts'
import type {
  MemberRecord,
  MemberRole,
  MemberStatus,
  PushPullEntry,
  SwimMessage,
  SwimMessageType,
  Update,
  UpdateType,
} from './types.ts'
import {
  isIncarnation,
  isLoad,
  isMemberId,
  isMemberStatus,
  isSeq,
  memberRecordError,
  SWIM_LIMITS,
} from './validate.ts'

/** Bytes that are not a valid SWIM message, or a message that cannot be encoded. */
export class SwimCodecError extends ConclaveError {
  static override readonly name = 'SwimCodecError'
  constructor(message = 'Invalid SWIM message', options?: ErrorOptions) {
    super(message, 'SwimCodecError', 'ERR_INVALID_SWIM_MESSAGE', options)
  }
}

const MESSAGE_TYPES: readonly (SwimMessageType | undefined)[] = [
  undefined,
  'ping',
  'ack',
  'pingReq',
  'nack',
  'pushPull',
  'gossip',
]
const UPDATE_TYPES: readonly (UpdateType | undefined)[] = [undefined, 'alive', 'suspect', 'dead', 'left']
const ROLES: readonly (MemberRole | undefined)[] = [undefined, 'voter', 'nonvoter']
const STATUSES: readonly (MemberStatus | undefined)[] = [undefined, 'alive', 'suspect', 'dead', 'left']

function codeOf<T>(table: readonly (T | undefined)[], value: T): number {
  return table.indexOf(value)
}

const VARINT = 0
const FIXED64 = 1
const LEN = 2
const FIXED32 = 5

function tag(field: number, wireType: number): number {
  return field * 8 + wireType
}

// SwimMessage fields.
const M_TYPE = 1
const M_SEQ = 2
const M_TARGET = 3
const M_SUSPECT_INCARNATION = 4
const M_REPLY = 5
const M_MEMBERS = 6
const M_UPDATES = 7

// Member fields.
const R_ID = 1
const R_NAME = 2
const R_ADDRS = 3
const R_CAPABILITIES = 4
const R_LABELS = 5
const R_ROLE = 6
const R_LOAD = 7
const R_INCARNATION = 8
const R_STATUS = 9

// Update fields.
const U_TYPE = 1
const U_MEMBER = 2
const U_ID = 3
const U_INCARNATION = 4
const U_FROM = 5

/** Which SwimMessage fields each type carries: required, and optional. */
const MESSAGE_FIELDS: Readonly<Record<SwimMessageType, { required: number[]; optional: number[] }>> = {
  ping: { required: [M_SEQ, M_TARGET], optional: [M_SUSPECT_INCARNATION] },
  ack: { required: [M_SEQ], optional: [] },
  pingReq: { required: [M_SEQ, M_TARGET], optional: [M_SUSPECT_INCARNATION] },
  nack: { required: [M_SEQ], optional: [] },
  pushPull: { required: [M_REPLY], optional: [M_MEMBERS] },
  gossip: { required: [], optional: [M_UPDATES] },
}

const UPDATE_FIELDS: Readonly<Record<UpdateType, number[]>> = {
  alive: [U_MEMBER],
  suspect: [U_ID, U_INCARNATION, U_FROM],
  dead: [U_ID, U_INCARNATION, U_FROM],
  left: [U_ID, U_INCARNATION],
}

// ---------- encoding ----------

/** Encodes `message`; throws `SwimCodecError` if it is not one the decoder would accept. */
export function encodeSwimMessage(message: SwimMessage): Uint8Array {
  const error = swimMessageError(message)
  if (error !== undefined) throw new SwimCodecError(`Cannot encode SWIM message: ${error}`)
  const w = createWriter()
  w.uint32(tag(M_TYPE, VARINT)).uint32(codeOf(MESSAGE_TYPES, message.type))
  switch (message.type) {
    case 'ping':
    case 'pingReq':
      w.uint32(tag(M_SEQ, VARINT)).uint32(message.seq)
      w.uint32(tag(M_TARGET, LEN)).string(message.target)
      if (message.suspectIncarnation !== undefined) {
        w.uint32(tag(M_SUSPECT_INCARNATION, VARINT)).uint64Number(message.suspectIncarnation)
      }
      break
    case 'ack':
    case 'nack':
      w.uint32(tag(M_SEQ, VARINT)).uint32(message.seq)
      break
    case 'pushPull':
      w.uint32(tag(M_REPLY, VARINT)).bool(message.reply)
      for (const entry of message.members) {
        w.uint32(tag(M_MEMBERS, LEN)).fork()
        writeRecord(w, entry, entry.status)
        w.ldelim()
      }
      break
    case 'gossip':
      for (const update of message.updates) {
        w.uint32(tag(M_UPDATES, LEN)).fork()
        writeUpdate(w, update)
        w.ldelim()
      }
      break
  }
  return w.finish()
}

function writeRecord(w: Writer, record: MemberRecord, status: MemberStatus | undefined): void {
  w.uint32(tag(R_ID, LEN)).string(record.id)
  w.uint32(tag(R_NAME, LEN)).string(record.name)
  for (const addr of record.addrs) w.uint32(tag(R_ADDRS, LEN)).string(addr)
  for (const capability of record.capabilities) w.uint32(tag(R_CAPABILITIES, LEN)).string(capability)
  for (const key of Object.keys(record.labels)) {
    w.uint32(tag(R_LABELS, LEN)).fork()
    w.uint32(tag(1, LEN)).string(key)
    w.uint32(tag(2, LEN)).string(record.labels[key])
    w.ldelim()
  }
  w.uint32(tag(R_ROLE, VARINT)).uint32(codeOf(ROLES, record.role))
  w.uint32(tag(R_LOAD, FIXED64)).double(record.load)
  w.uint32(tag(R_INCARNATION, VARINT)).uint64Number(record.incarnation)
  if (status !== undefined) w.uint32(tag(R_STATUS, VARINT)).uint32(codeOf(STATUSES, status))
}

function writeUpdate(w: Writer, update: Update): void {
  w.uint32(tag(U_TYPE, VARINT)).uint32(codeOf(UPDATE_TYPES, update.type))
  if (update.type === 'alive') {
    w.uint32(tag(U_MEMBER, LEN)).fork()
    writeRecord(w, update.member, undefined)
    w.ldelim()
    return
  }
  w.uint32(tag(U_ID, LEN)).string(update.id)
  w.uint32(tag(U_INCARNATION, VARINT)).uint64Number(update.incarnation)
  if (update.type !== 'left') w.uint32(tag(U_FROM, LEN)).string(update.from)
}

/** Why `message` cannot be encoded, or undefined. Checks what the decoder checks. */
export function swimMessageError(message: SwimMessage): string | undefined {
  if (typeof message !== 'object' || message === null) return 'not an object'
  switch (message.type) {
    case 'ping':
    case 'pingReq':
      if (!isSeq(message.seq)) return 'invalid seq'
      if (!isMemberId(message.target)) return 'invalid target'
      if (message.suspectIncarnation !== undefined && !isIncarnation(message.suspectIncarnation))
        return 'invalid suspectIncarnation'
      return undefined
    case 'ack':
    case 'nack':
      return isSeq(message.seq) ? undefined : 'invalid seq'
    case 'pushPull': {
      if (typeof message.reply !== 'boolean') return 'invalid reply'
      if (!Array.isArray(message.members) || message.members.length > SWIM_LIMITS.pushPullMembers)
        return 'invalid members'
      for (const entry of message.members) {
        const error = memberRecordError(entry)
        if (error !== undefined) return `member: ${error}`
        if (!isMemberStatus(entry.status)) return 'member: invalid status'
      }
      return undefined
    }
    case 'gossip': {
      if (!Array.isArray(message.updates) || message.updates.length > SWIM_LIMITS.gossipUpdates)
        return 'invalid updates'
      for (const update of message.updates) {
        const error = updateError(update)
        if (error !== undefined) return `update: ${error}`
      }
      return undefined
    }
    default:
      return 'unknown type'
  }
}

function updateError(update: Update): string | undefined {
  if (typeof update !== 'object' || update === null) return 'not an object'
  switch (update.type) {
    case 'alive':
      return typeof update.member === 'object' && update.member !== null
        ? memberRecordError(update.member)
        : 'missing member'
    case 'suspect':
    case 'dead':
      if (!isMemberId(update.from)) return 'invalid from'
      return isMemberId(update.id) && isIncarnation(update.incarnation)
        ? undefined
        : 'invalid id or incarnation'
    case 'left':
      return isMemberId(update.id) && isIncarnation(update.incarnation)
        ? undefined
        : 'invalid id or incarnation'
    default:
      return 'unknown type'
  }
}

// ---------- decoding ----------

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** A read position in `buf`; every read takes the end of the enclosing (sub-)message. */
class Cursor {
  readonly buf: Uint8Array
  pos = 0
  constructor(buf: Uint8Array) {
    this.buf = buf
  }

  varint(end: number): number {
    let value = 0
    let multiplier = 1
    // 8 bytes carry 56 bits, enough for any safe integer.
    for (let count = 0; count < 8; count++) {
      if (this.pos >= end) throw new SwimCodecError('Truncated varint')
      const byte = this.buf[this.pos++]
      value += (byte & 127) * multiplier
      if (byte < 128) {
        if (value > Number.MAX_SAFE_INTEGER) throw new SwimCodecError('Integer out of range')
        return value
      }
      multiplier *= 128
    }
    throw new SwimCodecError('Integer out of range')
  }

  /** A field tag; field numbers beyond 2^29 − 1 are invalid in protobuf. */
  tag(end: number): number {
    const value = this.varint(end)
    if (value > 0xffff_ffff) throw new SwimCodecError('Invalid field tag')
    return value
  }

  fieldEnd(end: number): number {
    const length = this.varint(end)
    const fieldEnd = this.pos + length
    if (fieldEnd > end) throw new SwimCodecError('Truncated field')
    return fieldEnd
  }

  string(end: number, maxLength: number): string {
    const fieldEnd = this.fieldEnd(end)
    const start = this.pos
    // UTF-8 takes at least one byte per UTF-16 unit and at most three: reject before decoding.
    if (fieldEnd - start > maxLength * 3) throw new SwimCodecError('String too long')
    this.pos = fieldEnd
    let text: string
    try {
      text = utf8.decode(this.buf.subarray(start, fieldEnd))
    } catch (err) {
      throw new SwimCodecError('Invalid UTF-8', { cause: err })
    }
    if (text.length > maxLength) throw new SwimCodecError('String too long')
    return text
  }

  double(end: number): number {
    if (this.pos + 8 > end) throw new SwimCodecError('Truncated double')
    const view = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8)
    this.pos += 8
    return view.getFloat64(0, true)
  }

  skip(fieldTag: number, end: number): void {
    if (fieldTag < 8) throw new SwimCodecError('Invalid field number 0')
    switch (fieldTag & 7) {
      case VARINT:
        for (let count = 0; ; count++) {
          if (count === 10 || this.pos >= end) throw new SwimCodecError('Malformed varint')
          if (this.buf[this.pos++] < 128) return
        }
      case FIXED64:
        this.advance(8, end)
        return
      case LEN:
        this.pos = this.fieldEnd(end)
        return
      case FIXED32:
        this.advance(4, end)
        return
      default:
        throw new SwimCodecError(`Unsupported wire type ${fieldTag & 7}`)
    }
  }

  private advance(count: number, end: number): void {
    if (this.pos + count > end) throw new SwimCodecError('Truncated field')
    this.pos += count
  }
}

/** Rejects a known field sent with another wire type. */
function expectWire(fieldTag: number, wireType: number): void {
  if ((fieldTag & 7) !== wireType) throw new SwimCodecError(`Field ${fieldTag >>> 3} has the wrong wire type`)
}

/** Rejects a repeated singular field. */
function once(seen: Set<number>, field: number): void {
  if (seen.has(field)) throw new SwimCodecError(`Field ${field} repeated`)
  seen.add(field)
}

function tableValue<T>(table: readonly (T | undefined)[], code: number, what: string): T {
  const value = code < table.length ? table[code] : undefined
  if (value === undefined) throw new SwimCodecError(`Unknown ${what} ${code}`)
  return value
}

/** Decodes one SWIM message; throws `SwimCodecError` on anything malformed, and only that. */
export function decodeSwimMessage(bytes: Uint8Array): SwimMessage {
  try {
    return decodeMessage(new Cursor(bytes), bytes.length)
  } catch (err) {
    if (err instanceof SwimCodecError) throw err
    throw new SwimCodecError(`Malformed SWIM message: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    })
  }
}

function decodeMessage(cursor: Cursor, end: number): SwimMessage {
  const seen = new Set<number>()
  let type: SwimMessageType | undefined
  let seq = 0
  let target = ''
  let suspectIncarnation: number | undefined
  let reply = false
  const members: PushPullEntry[] = []
  const updates: Update[] = []
  while (cursor.pos < end) {
    const fieldTag = cursor.tag(end)
    const field = fieldTag >>> 3
    switch (field) {
      case M_TYPE:
        expectWire(fieldTag, VARINT)
        once(seen, field)
        type = tableValue(MESSAGE_TYPES, cursor.varint(end), 'message type')
        break
      case M_SEQ: {
        expectWire(fieldTag, VARINT)
        once(seen, field)
        const value = cursor.varint(end)
        if (!isSeq(value)) throw new SwimCodecError('seq out of range')
        seq = value
        break
      }
      case M_TARGET:
        expectWire(fieldTag, LEN)
        once(seen, field)
        target = cursor.string(end, SWIM_LIMITS.idLength)
        if (!isMemberId(target)) throw new SwimCodecError('Invalid target')
        break
      case M_SUSPECT_INCARNATION:
        expectWire(fieldTag, VARINT)
        once(seen, field)
        suspectIncarnation = cursor.varint(end)
        break
      case M_REPLY: {
        expectWire(fieldTag, VARINT)
        once(seen, field)
        const value = cursor.varint(end)
        if (value > 1) throw new SwimCodecError('Invalid bool')
        reply = value === 1
        break
      }
      case M_MEMBERS: {
        expectWire(fieldTag, LEN)
        seen.add(field)
        if (members.length >= SWIM_LIMITS.pushPullMembers) throw new SwimCodecError('Too many members')
        const fieldEnd = cursor.fieldEnd(end)
        const { record, status } = decodeRecord(cursor, fieldEnd)
        if (status === undefined) throw new SwimCodecError('Push-pull member without status')
        members.push({ ...record, status })
        break
      }
      case M_UPDATES: {
        expectWire(fieldTag, LEN)
        seen.add(field)
        if (updates.length >= SWIM_LIMITS.gossipUpdates) throw new SwimCodecError('Too many updates')
        updates.push(decodeUpdate(cursor, cursor.fieldEnd(end)))
        break
      }
      default:
        cursor.skip(fieldTag, end)
    }
  }
  if (type === undefined) throw new SwimCodecError('Missing message type')
  const { required, optional } = MESSAGE_FIELDS[type]
  for (const field of required) if (!seen.has(field)) throw new SwimCodecError(`${type} lacks field ${field}`)
  for (const field of seen) {
    if (field !== M_TYPE && !required.includes(field) && !optional.includes(field)) {
      throw new SwimCodecError(`${type} has field ${field}`)
    }
  }
  switch (type) {
    case 'ping':
    case 'pingReq':
      return suspectIncarnation === undefined
        ? { type, seq, target }
        : { type, seq, target, suspectIncarnation }
    case 'ack':
    case 'nack':
      return { type, seq }
    case 'pushPull':
      return { type, reply, members }
    case 'gossip':
      return { type, updates }
  }
}

function decodeRecord(
  cursor: Cursor,
  end: number,
): { record: MemberRecord; status: MemberStatus | undefined } {
  const seen = new Set<number>()
  let id = ''
  let name = ''
  const addrs: string[] = []
  const capabilities: string[] = []
  const labels = new Map<string, string>()
  let role: MemberRole | undefined
  let load = 0
  let incarnation = 0
  let status: MemberStatus | undefined
  while (cursor.pos < end) {
    const fieldTag = cursor.tag(end)
    const field = fieldTag >>> 3
    switch (field) {
      case R_ID:
        expectWire(fieldTag, LEN)
        once(seen, field)
        id = cursor.string(end, SWIM_LIMITS.idLength)
        if (!isMemberId(id)) throw new SwimCodecError('Invalid member id')
        break
      case R_NAME:
        expectWire(fieldTag, LEN)
        once(seen, field)
        name = cursor.string(end, SWIM_LIMITS.nameLength)
        break
      case R_ADDRS:
        expectWire(fieldTag, LEN)
        if (addrs.length >= SWIM_LIMITS.addrs) throw new SwimCodecError('Too many addrs')
        addrs.push(cursor.string(end, SWIM_LIMITS.addrLength))
        break
      case R_CAPABILITIES:
        expectWire(fieldTag, LEN)
        if (capabilities.length >= SWIM_LIMITS.capabilities) throw new SwimCodecError('Too many capabilities')
        capabilities.push(cursor.string(end, SWIM_LIMITS.capabilityLength))
        break
      case R_LABELS: {
        expectWire(fieldTag, LEN)
        if (labels.size >= SWIM_LIMITS.labels) throw new SwimCodecError('Too many labels')
        const [key, value] = decodeLabel(cursor, cursor.fieldEnd(end))
        if (labels.has(key)) throw new SwimCodecError('Duplicate label')
        labels.set(key, value)
        break
      }
      case R_ROLE:
        expectWire(fieldTag, VARINT)
        once(seen, field)
        role = tableValue(ROLES, cursor.varint(end), 'role')
        break
      case R_LOAD:
        expectWire(fieldTag, FIXED64)
        once(seen, field)
        load = cursor.double(end)
        if (!isLoad(load)) throw new SwimCodecError('Load out of range')
        break
      case R_INCARNATION:
        expectWire(fieldTag, VARINT)
        once(seen, field)
        incarnation = cursor.varint(end)
        break
      case R_STATUS:
        expectWire(fieldTag, VARINT)
        once(seen, field)
        status = tableValue(STATUSES, cursor.varint(end), 'status')
        break
      default:
        cursor.skip(fieldTag, end)
    }
  }
  for (const field of [R_ID, R_NAME, R_ROLE, R_LOAD, R_INCARNATION]) {
    if (!seen.has(field)) throw new SwimCodecError(`Member lacks field ${field}`)
  }
  const record: MemberRecord = {
    id,
    name,
    addrs,
    capabilities,
    // fromEntries defines own properties, so a '__proto__' label stays a label.
    labels: Object.fromEntries(labels),
    role: role as MemberRole,
    load,
    incarnation,
  }
  return { record, status }
}

function decodeLabel(cursor: Cursor, end: number): [string, string] {
  let key: string | undefined
  let value: string | undefined
  while (cursor.pos < end) {
    const fieldTag = cursor.tag(end)
    const field = fieldTag >>> 3
    if (field === 1) {
      expectWire(fieldTag, LEN)
      if (key !== undefined) throw new SwimCodecError('Label key repeated')
      key = cursor.string(end, SWIM_LIMITS.labelKeyLength)
    } else if (field === 2) {
      expectWire(fieldTag, LEN)
      if (value !== undefined) throw new SwimCodecError('Label value repeated')
      value = cursor.string(end, SWIM_LIMITS.labelValueLength)
    } else {
      cursor.skip(fieldTag, end)
    }
  }
  if (key === undefined || value === undefined) throw new SwimCodecError('Incomplete label')
  return [key, value]
}

function decodeUpdate(cursor: Cursor, end: number): Update {
  const seen = new Set<number>()
  let type: UpdateType | undefined
  let member: MemberRecord | undefined
  let id = ''
  let incarnation = 0
  let from = ''
  while (cursor.pos < end) {
    const fieldTag = cursor.tag(end)
    const field = fieldTag >>> 3
    switch (field) {
      case U_TYPE:
        expectWire(fieldTag, VARINT)
        once(seen, field)
        type = tableValue(UPDATE_TYPES, cursor.varint(end), 'update type')
        break
      case U_MEMBER: {
        expectWire(fieldTag, LEN)
        once(seen, field)
        const decoded = decodeRecord(cursor, cursor.fieldEnd(end))
        if (decoded.status !== undefined) throw new SwimCodecError('Alive update member with status')
        member = decoded.record
        break
      }
      case U_ID:
        expectWire(fieldTag, LEN)
        once(seen, field)
        id = cursor.string(end, SWIM_LIMITS.idLength)
        if (!isMemberId(id)) throw new SwimCodecError('Invalid update id')
        break
      case U_INCARNATION:
        expectWire(fieldTag, VARINT)
        once(seen, field)
        incarnation = cursor.varint(end)
        break
      case U_FROM:
        expectWire(fieldTag, LEN)
        once(seen, field)
        from = cursor.string(end, SWIM_LIMITS.idLength)
        if (!isMemberId(from)) throw new SwimCodecError('Invalid update from')
        break
      default:
        cursor.skip(fieldTag, end)
    }
  }
  if (type === undefined) throw new SwimCodecError('Update lacks type')
  const fields = UPDATE_FIELDS[type]
  if (seen.size !== fields.length + 1) throw new SwimCodecError(`${type} update has the wrong fields`)
  for (const field of fields)
    if (!seen.has(field)) throw new SwimCodecError(`${type} update lacks field ${field}`)
  switch (type) {
    case 'alive':
      return { type, member: member as MemberRecord }
    case 'suspect':
    case 'dead':
      return { type, id, incarnation, from }
    case 'left':
      return { type, id, incarnation }
  }
}
