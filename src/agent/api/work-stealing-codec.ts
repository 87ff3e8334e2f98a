/**
 * The work-stealing advert as it travels on the gossipsub work topic: UTF-8 JSON text of exactly
 * `{ agentId, load, surplus }`. Anyone connected can publish on the topic, so the decoder takes nothing on
 * trust: bytes that are not exactly a well-formed advert within bounds give a `FrameError`, never another
 * exception.
 */

import { FrameError } from '../../net/frame.ts'
import { MAX_KEY_LENGTH } from '../validate.ts'

/** Largest advert accepted, in bytes. */
export const MAX_ADVERT_BYTES = 64 * 1024
/** Most task ids one advert names. */
export const MAX_SURPLUS = 256

/** A busy agent's load and the tasks it will not start soon, as published on the work topic. */
export interface WorkAdvert {
  agentId: string
  /** (running + assigned) / slots in the replicated state. */
  load: number
  /** Ids of tasks assigned to it and not running, that it would like another agent to take. */
  surplus: string[]
  /**
   * The publisher has stealing enabled: agents advertise their surplus only while some agent says so (an
   * agent of an earlier version, whose decoder refuses this field, drops such an advert, which names nothing
   * it would miss).
   */
  stealing?: true
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })
const FIELDS = new Set(['agentId', 'load', 'surplus', 'stealing'])

/** Encodes an advert; `FrameError` if it is not one the decoder would accept. */
export function encodeWorkAdvert(advert: WorkAdvert): Uint8Array {
  const value = {
    agentId: advert.agentId,
    load: advert.load,
    surplus: advert.surplus,
    stealing: advert.stealing,
  }
  const bytes = encoder.encode(JSON.stringify(value))
  checkAdvert(bytes, value)
  return bytes
}

/**
 * The advert in `bytes`, its surplus without duplicates. Throws `FrameError` for anything else: over
 * `MAX_ADVERT_BYTES`, not UTF-8 JSON, another shape or an extra field, an empty or over-long id or task id,
 * a load that is negative or not finite, more than `MAX_SURPLUS` task ids.
 */
export function decodeWorkAdvert(bytes: Uint8Array): WorkAdvert {
  if (!(bytes instanceof Uint8Array)) throw new FrameError('Advert must be bytes')
  if (bytes.byteLength > MAX_ADVERT_BYTES) {
    throw new FrameError(`Advert of ${bytes.byteLength} bytes is over the limit of ${MAX_ADVERT_BYTES}`)
  }
  let value: unknown
  try {
    value = JSON.parse(decoder.decode(bytes))
  } catch (cause) {
    throw new FrameError('Advert is not UTF-8 JSON', { cause })
  }
  const advert = checkAdvert(bytes, value)
  return { ...advert, surplus: [...new Set(advert.surplus)] }
}

/** `decodeWorkAdvert`, or undefined for what it refuses: what a gossip receiver wants. */
export function tryDecodeWorkAdvert(bytes: Uint8Array): WorkAdvert | undefined {
  try {
    return decodeWorkAdvert(bytes)
  } catch {
    return undefined
  }
}

function checkAdvert(bytes: Uint8Array, value: unknown): WorkAdvert {
  if (bytes.byteLength > MAX_ADVERT_BYTES) {
    throw new FrameError(`Advert of ${bytes.byteLength} bytes is over the limit of ${MAX_ADVERT_BYTES}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FrameError('Advert must be an object')
  }
  for (const key of Object.keys(value)) {
    if (!FIELDS.has(key)) throw new FrameError(`Advert has an unknown field ${key.slice(0, 40)}`)
  }
  const { agentId, load, surplus, stealing } = value as Record<string, unknown>
  if (stealing !== undefined && stealing !== true)
    throw new FrameError('Advert stealing must be true or absent')
  if (!isId(agentId)) throw new FrameError('Advert agentId must be a non-empty string within bounds')
  if (typeof load !== 'number' || !Number.isFinite(load) || load < 0) {
    throw new FrameError('Advert load must be a finite number >= 0')
  }
  if (!Array.isArray(surplus) || surplus.length > MAX_SURPLUS) {
    throw new FrameError(`Advert surplus must be an array of at most ${MAX_SURPLUS} task ids`)
  }
  for (const id of surplus) {
    if (!isId(id)) throw new FrameError('Advert task ids must be non-empty strings within bounds')
  }
  return stealing === true
    ? { agentId, load, surplus: surplus as string[], stealing }
    : { agentId, load, surplus: surplus as string[] }
}

function isId(value: unknown): value is string {
  return (
    typeof value === 'string' && value.length > 0 && value.length <= MAX_KEY_LENGTH && value.isWellFormed()
  )
}

export function encodeAdvert(advert: WorkAdvert): Uint8Array {
  return encoder.encode(JSON.stringify(advert))
}

/** The advert in `data`, or undefined for anything that is not exactly a well-formed one within bounds. */
export function parseAdvert(data: unknown): WorkAdvert | undefined {
  if (!(data instanceof Uint8Array) || data.length > MAX_ADVERT_BYTES) return undefined
  let value: unknown
  try {
    value = JSON.parse(decoder.decode(data))
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const { agentId, load, surplus } = value as Record<string, unknown>
  if (typeof agentId !== 'string' || agentId.length === 0 || agentId.length > MAX_KEY_LENGTH) return undefined
  if (typeof load !== 'number' || !Number.isFinite(load) || load < 0) return undefined
  if (!Array.isArray(surplus) || surplus.length > MAX_SURPLUS) return undefined
  for (const id of surplus) {
    if (typeof id !== 'string' || id.length === 0 || id.length > MAX_KEY_LENGTH) return undefined
  }
  return { agentId, load, surplus: [...new Set(surplus as string[])] }
}
