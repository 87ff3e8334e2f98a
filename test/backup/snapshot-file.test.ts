import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  decodeSnapshotFile,
  encodeSnapshotFile,
  SNAPSHOT_FILE_VERSION,
  SnapshotFileError,
} from '../../src/backup/index.ts'

const snapshot = {
  clusterId: 'c-1',
  revision: 42,
  index: 120,
  term: 3,
  config: { voters: ['a', 'b', 'c'], nonVoters: ['d'] },
  createdAt: '2026-12-07T05:00:00.000Z',
  takenBy: 'a',
  data: new TextEncoder().encode('{"state":"bytes"}'),
}

function refusal(bytes: Uint8Array): SnapshotFileError {
  try {
    decodeSnapshotFile(bytes)
  } catch (err) {
    expect(err).toBeInstanceOf(SnapshotFileError)
    expect((err as SnapshotFileError).code).toBe('ERR_SNAPSHOT_FILE')
    return err as SnapshotFileError
  }
  throw new Error('decoded a damaged file')
}

describe('the snapshot file', () => {
  it('gives back what was written', () => {
    const decoded = decodeSnapshotFile(encodeSnapshotFile(snapshot))
    expect(decoded).toEqual({ ...snapshot, version: SNAPSHOT_FILE_VERSION })
  })

  it('refuses a file cut short anywhere', () => {
    const bytes = encodeSnapshotFile(snapshot)
    for (const length of [0, 5, 12, 40, bytes.length - 33, bytes.length - 1]) {
      refusal(bytes.subarray(0, length))
    }
  })

  it('refuses a file with any one byte altered, the hash included', () => {
    const bytes = encodeSnapshotFile(snapshot)
    for (let i = 8; i < bytes.length; i++) {
      const altered = bytes.slice()
      altered[i] ^= 0x01
      expect(refusal(altered).message).toMatch(/integrity|signature/)
    }
  })

  it('refuses what is not a snapshot file, and names a newer format version', () => {
    expect(refusal(new TextEncoder().encode('SQLite format 3\0 and more bytes here')).message).toMatch(
      /not a conclave snapshot/,
    )
    // A well-hashed file of a future version: refused by its version, not by its hash.
    const patched = encodeSnapshotFile(snapshot)
    const at = Buffer.from(patched).indexOf('"version":1') + '"version":'.length
    patched[at] = '9'.charCodeAt(0)
    const body = patched.subarray(0, patched.length - 32)
    patched.set(createHash('sha256').update(body).digest(), body.length)
    expect(refusal(patched).message).toMatch(/version 9 is not supported.*newer conclave/)
  })
})
