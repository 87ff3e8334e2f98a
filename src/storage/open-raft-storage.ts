import { MemoryRaftStorage } from './memory-storage.ts'
import type { RaftStorage } from './raft-storage.ts'
import { SqliteRaftStorage } from './sqlite-storage.ts'

/**
 * The agent's storage: a SQLite file inside `dataDir` (created, with its parents, if missing), or memory
 * when `dataDir` is omitted (nothing survives the process).
 */
export function openRaftStorage(dataDir?: string): RaftStorage {
  return dataDir === undefined ? new MemoryRaftStorage() : SqliteRaftStorage.open(dataDir)
}
