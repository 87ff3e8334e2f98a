/**
 * The snapshot file `conclave snapshot save` writes and `conclave snapshot restore` reads: the replicated
 * state at one applied Raft index, what Raft knew of it, and a sha256 over everything, so that a file cut
 * short or changed by one bit is refused before anything is written from it.
 *
 * Layout: the 8 bytes `CNCLSNAP`, a 4-byte big-endian header length, the header (UTF-8 JSON, `SnapshotHeader`
 * without the data), the state machine's snapshot bytes, then the 32-byte sha256 of all that precedes it.
 */

import { createHash } from 'node:crypto'
import type { Config } from '../raft/types.ts'
import { SnapshotFileError } from './errors.ts'

/** The format version this code writes; it reads this one only and names a newer one as such. */
export const SNAPSHOT_FILE_VERSION = 1

const MAGIC = new TextEncoder().encode('CNCLSNAP')
const HASH_BYTES = 32
/** A header is a few hundred bytes; a length past this is damage, not a header. */
const MAX_HEADER_BYTES = 1024 * 1024

/** What a snapshot file says about the state it holds. */
export interface SnapshotHeader {
  /** The file format version (`SNAPSHOT_FILE_VERSION`). */
  version: number
  /** The id of the cluster it was taken from. */
  clusterId: string
  /** The KV store's revision in the snapshot: every write up to it is in, none after. */
  revision: number
  /** The Raft index the state was applied up to. */
  index: number
  /** The Raft term of the agent that took it, at least the term of the entry at `index`. */
  term: number
  /** The Raft configuration of the cluster it was taken from (informational: a restore makes its own). */
  config: Config
  /** When it was taken (wall clock of the agent that took it), ISO 8601. */
  createdAt: string
  /** The agent that took it, after a linearizable barrier. */
  takenBy: string
}

/** A decoded snapshot file: its header and the state machine's snapshot bytes. */
export interface SnapshotFile extends SnapshotHeader {
  data: Uint8Array
}

/** The bytes of a snapshot file holding `snapshot`, with its integrity hash. */
export function encodeSnapshotFile(snapshot: Omit<SnapshotFile, 'version'>): Uint8Array {
  const header: SnapshotHeader = {
    version: SNAPSHOT_FILE_VERSION,
    clusterId: snapshot.clusterId,
    revision: snapshot.revision,
    index: snapshot.index,
    term: snapshot.term,
    config: { voters: [...snapshot.config.voters], nonVoters: [...snapshot.config.nonVoters] },
    createdAt: snapshot.createdAt,
    takenBy: snapshot.takenBy,
  }
  const headerBytes = new TextEncoder().encode(JSON.stringify(header))
  const body = new Uint8Array(MAGIC.length + 4 + headerBytes.length + snapshot.data.length)
  body.set(MAGIC, 0)
  new DataView(body.buffer).setUint32(MAGIC.length, headerBytes.length)
  body.set(headerBytes, MAGIC.length + 4)
  body.set(snapshot.data, MAGIC.length + 4 + headerBytes.length)
  const file = new Uint8Array(body.length + HASH_BYTES)
  file.set(body, 0)
  file.set(sha256(body), body.length)
  return file
}

/**
 * The snapshot in `bytes`, after checking its hash, version and header. Throws `SnapshotFileError` for
 * anything else: bytes that are not a snapshot file, cut short, altered, or of another format version.
 */
export function decodeSnapshotFile(bytes: Uint8Array): SnapshotFile {
  if (!(bytes instanceof Uint8Array)) throw new SnapshotFileError('a snapshot file is bytes')
  if (bytes.length < MAGIC.length || !MAGIC.every((byte, i) => bytes[i] === byte)) {
    throw new SnapshotFileError('not a conclave snapshot file (no CNCLSNAP signature)')
  }
  if (bytes.length < MAGIC.length + 4 + HASH_BYTES) {
    throw new SnapshotFileError(`snapshot file truncated: ${bytes.length} bytes`)
  }
  const bodyLength = bytes.length - HASH_BYTES
  const body = bytes.subarray(0, bodyLength)
  const expected = bytes.subarray(bodyLength)
  const actual = sha256(body)
  if (!actual.every((byte, i) => expected[i] === byte)) {
    throw new SnapshotFileError(
      'snapshot file integrity check failed: its sha256 does not match its content (truncated or altered)',
    )
  }
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(MAGIC.length)
  const dataStart = MAGIC.length + 4 + headerLength
  if (headerLength > MAX_HEADER_BYTES || dataStart > bodyLength) {
    throw new SnapshotFileError(`snapshot file header length ${headerLength} is past its end`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(body.subarray(MAGIC.length + 4, dataStart)),
    )
  } catch (cause) {
    throw new SnapshotFileError('snapshot file header is not UTF-8 JSON', { cause })
  }
  const header = checkHeader(parsed)
  return { ...header, data: body.slice(dataStart) }
}

function checkHeader(value: unknown): SnapshotHeader {
  if (typeof value !== 'object' || value === null)
    throw new SnapshotFileError('snapshot header is not an object')
  const header = value as Record<string, unknown>
  if (header.version !== SNAPSHOT_FILE_VERSION) {
    const newer = typeof header.version === 'number' && header.version > SNAPSHOT_FILE_VERSION
    throw new SnapshotFileError(
      `snapshot file format version ${String(header.version)} is not supported (this code reads version ` +
        `${SNAPSHOT_FILE_VERSION}${newer ? '; it was written by a newer conclave' : ''})`,
    )
  }
  const count = (name: string): number => {
    const field = header[name]
    if (!Number.isSafeInteger(field) || (field as number) < 0) {
      throw new SnapshotFileError(`snapshot header ${name} is not an integer >= 0`)
    }
    return field as number
  }
  const text = (name: string): string => {
    const field = header[name]
    if (typeof field !== 'string' || field === '')
      throw new SnapshotFileError(`snapshot header ${name} is not a string`)
    return field
  }
  const config = header.config as { voters?: unknown; nonVoters?: unknown } | null
  const ids = (list: unknown): list is string[] =>
    Array.isArray(list) && list.every(id => typeof id === 'string')
  if (typeof config !== 'object' || config === null || !ids(config.voters) || !ids(config.nonVoters)) {
    throw new SnapshotFileError('snapshot header config is malformed')
  }
  return {
    version: SNAPSHOT_FILE_VERSION,
    clusterId: text('clusterId'),
    revision: count('revision'),
    index: count('index'),
    term: count('term'),
    config: { voters: config.voters, nonVoters: config.nonVoters },
    createdAt: text('createdAt'),
    takenBy: text('takenBy'),
  }
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest())
}
