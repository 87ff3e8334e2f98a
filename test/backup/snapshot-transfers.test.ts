import { describe, expect, it } from 'vitest'
import { SNAPSHOT_CHUNK_BYTES, SnapshotTransfers } from '../../src/backup/snapshot-transfers.ts'
import type { SavedSnapshot } from '../../src/backup/take-snapshot.ts'
import { InvalidArgumentError, LimitExceededError, NotFoundError } from '../../src/errors.ts'

function saved(length: number): SavedSnapshot {
  const bytes = new Uint8Array(length).map((_, i) => i % 251)
  return {
    bytes,
    header: {
      version: 1,
      clusterId: 'c',
      revision: 7,
      index: 9,
      term: 2,
      config: { voters: ['a'], nonVoters: [] },
      createdAt: new Date(0).toISOString(),
      takenBy: 'a',
    },
  }
}

describe('snapshot transfers', () => {
  it('hands a snapshot out in chunks that put back together give the file, then forgets it', async () => {
    const transfers = new SnapshotTransfers()
    const { bytes } = saved(2 * SNAPSHOT_CHUNK_BYTES + 123)
    let answer = await transfers.start(async () => ({ ...saved(0), bytes }))
    const parts: Buffer[] = []
    for (;;) {
      expect(answer.revision).toBe(7)
      expect(answer.totalBytes).toBe(bytes.length)
      const chunk = Buffer.from(answer.chunk, 'base64')
      expect(chunk.length).toBeLessThanOrEqual(SNAPSHOT_CHUNK_BYTES)
      parts.push(chunk)
      const next = answer.offset + chunk.length
      if (next === answer.totalBytes) break
      answer = transfers.chunk(answer.handle, next)
    }
    expect(parts).toHaveLength(3)
    expect(new Uint8Array(Buffer.concat(parts))).toEqual(bytes)
    expect(() => transfers.chunk(answer.handle, 0)).toThrow(NotFoundError)
  })

  it('refuses a bad offset or handle, and more than two snapshots held at once', async () => {
    const transfers = new SnapshotTransfers()
    const first = await transfers.start(async () => saved(SNAPSHOT_CHUNK_BYTES + 1))
    expect(() => transfers.chunk(first.handle, -1)).toThrow(InvalidArgumentError)
    expect(() => transfers.chunk(first.handle, SNAPSHOT_CHUNK_BYTES + 2)).toThrow(InvalidArgumentError)
    expect(() => transfers.chunk('nope', 0)).toThrow(NotFoundError)
    await transfers.start(async () => saved(SNAPSHOT_CHUNK_BYTES + 1))
    await expect(transfers.start(async () => saved(1))).rejects.toBeInstanceOf(LimitExceededError)
    transfers.clear()
    await transfers.start(async () => saved(1))
  })
})
