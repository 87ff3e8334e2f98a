import { MemoryDisk, MemoryRaftStorage } from '../../src/storage/memory-storage.ts'
import { describeRaftStorageContract } from './raft-storage-contract.ts'

describeRaftStorageContract('MemoryRaftStorage', () => {
  const disk = new MemoryDisk()
  return { open: () => new MemoryRaftStorage(disk), cleanup: () => {} }
})
