/**
 * Shape and size limits of SWIM data, shared by the codec (every decoded message) and the core (the local
 * record the shell hands in). A record that passes here encodes, and decodes back equal.
 */

import type { LocalFields, MemberRecord, MemberRole, MemberStatus } from './types.ts'

export const SWIM_LIMITS = Object.freeze({
  /** Characters in a member id (peer id strings are about 52). */
  idLength: 256,
  nameLength: 256,
  addrs: 64,
  addrLength: 1024,
  capabilities: 256,
  capabilityLength: 256,
  labels: 128,
  labelKeyLength: 256,
  labelValueLength: 1024,
  /** Entries in one push-pull message. */
  pushPullMembers: 16_384,
  /** Updates in one gossip batch. */
  gossipUpdates: 4096,
  /** Probe sequence numbers are unsigned 32-bit. */
  maxSeq: 0xffff_ffff,
})

const ROLES: ReadonlySet<string> = new Set<MemberRole>(['voter', 'nonvoter'])
const STATUSES: ReadonlySet<string> = new Set<MemberStatus>(['alive', 'suspect', 'dead', 'left'])

export function isMemberRole(value: unknown): value is MemberRole {
  return typeof value === 'string' && ROLES.has(value)
}

export function isMemberStatus(value: unknown): value is MemberStatus {
  return typeof value === 'string' && STATUSES.has(value)
}

/** A string within `maxLength` UTF-16 units that encodes to UTF-8 and back unchanged (no lone surrogate). */
export function isWireString(value: unknown, maxLength: number): value is string {
  return typeof value === 'string' && value.length <= maxLength && value.isWellFormed()
}

export function isMemberId(value: unknown): value is string {
  return isWireString(value, SWIM_LIMITS.idLength) && value.length > 0
}

/** Incarnations are non-negative safe integers (they start from a millisecond timestamp). */
export function isIncarnation(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

export function isSeq(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= SWIM_LIMITS.maxSeq
}

export function isLoad(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= 1
}

function isStringList(value: unknown, maxCount: number, maxLength: number): value is string[] {
  if (!Array.isArray(value) || value.length > maxCount) return false
  for (const item of value) if (!isWireString(item, maxLength)) return false
  return true
}

function isLabels(value: unknown): value is Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const keys = Object.keys(value)
  if (keys.length > SWIM_LIMITS.labels) return false
  for (const key of keys) {
    const item = (value as Record<string, unknown>)[key]
    if (!isWireString(key, SWIM_LIMITS.labelKeyLength)) return false
    if (!isWireString(item, SWIM_LIMITS.labelValueLength)) return false
  }
  return true
}

/** Why `fields` cannot be (part of) a member record, or undefined when every present field is valid. */
export function localFieldsError(fields: LocalFields): string | undefined {
  if (fields.name !== undefined && !isWireString(fields.name, SWIM_LIMITS.nameLength)) return 'invalid name'
  if (fields.addrs !== undefined && !isStringList(fields.addrs, SWIM_LIMITS.addrs, SWIM_LIMITS.addrLength))
    return 'invalid addrs'
  if (
    fields.capabilities !== undefined &&
    !isStringList(fields.capabilities, SWIM_LIMITS.capabilities, SWIM_LIMITS.capabilityLength)
  )
    return 'invalid capabilities'
  if (fields.labels !== undefined && !isLabels(fields.labels)) return 'invalid labels'
  if (fields.role !== undefined && !isMemberRole(fields.role)) return 'invalid role'
  if (fields.load !== undefined && !isLoad(fields.load)) return 'invalid load'
  return undefined
}

/** Why `record` is not a valid member record, or undefined. */
export function memberRecordError(record: MemberRecord): string | undefined {
  if (!isMemberId(record.id)) return 'invalid id'
  if (!isIncarnation(record.incarnation)) return 'invalid incarnation'
  for (const key of ['name', 'addrs', 'capabilities', 'labels', 'role', 'load'] as const) {
    if (record[key] === undefined) return `missing ${key}`
  }
  return localFieldsError(record)
}

/** A deep copy, so no two owners share a record's arrays or labels. */
export function cloneRecord(record: MemberRecord): MemberRecord {
  return {
    id: record.id,
    name: record.name,
    addrs: [...record.addrs],
    capabilities: [...record.capabilities],
    labels: { ...record.labels },
    role: record.role,
    load: record.load,
    incarnation: record.incarnation,
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a)
  if (keys.length !== Object.keys(b).length) return false
  for (const key of keys) if (!Object.hasOwn(b, key) || a[key] !== b[key]) return false
  return true
}

/** Whether two records say the same about a member, incarnation aside. */
export function sameRecordContent(a: MemberRecord, b: MemberRecord): boolean {
  return (
    a.id === b.id &&
    a.name === b.name &&
    a.role === b.role &&
    a.load === b.load &&
    sameList(a.addrs, b.addrs) &&
    sameList(a.capabilities, b.capabilities) &&
    sameLabels(a.labels, b.labels)
  )
}
