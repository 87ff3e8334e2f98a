import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import {
  MemoryRaftStorage,
  openRaftStorage,
  SqliteRaftStorage,
  STORAGE_FILE_NAME,
} from '../../src/storage/index.ts'

it('opens SQLite storage in a data directory, creating it, and finds it again', () => {
  const root = mkdtempSync(join(tmpdir(), 'conclave-open-'))
  try {
    const dataDir = join(root, 'nested', 'agent')
    const storage = openRaftStorage(dataDir)
    expect(storage).toBeInstanceOf(SqliteRaftStorage)
    expect(existsSync(join(dataDir, STORAGE_FILE_NAME))).toBe(true)
    storage.setMeta('clusterId', new Uint8Array([1]))
    storage.close()
    const reopened = openRaftStorage(dataDir)
    expect(reopened.getMeta('clusterId')).toEqual(new Uint8Array([1]))
    reopened.close()
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
})

it('keeps storage in memory without a data directory', () => {
  const storage = openRaftStorage()
  expect(storage).toBeInstanceOf(MemoryRaftStorage)
  expect(storage.load()).toEqual({
    hardState: { term: 0, vote: '', commit: 0 },
    snapshot: undefined,
    entries: [],
  })
  storage.close()
})
