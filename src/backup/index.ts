export { SnapshotFileError } from './errors.ts'
export { type ForcedCluster, forceNewCluster, openForNewCluster } from './force-new-cluster.ts'
export { type RestoredCluster, type RestoreSnapshotOptions, restoreSnapshot } from './restore.ts'
export {
  decodeSnapshotFile,
  encodeSnapshotFile,
  SNAPSHOT_FILE_VERSION,
  type SnapshotFile,
  type SnapshotHeader,
} from './snapshot-file.ts'
export {
  type SavedSnapshot,
  type SaveSnapshotOptions,
  type SnapshotSource,
  saveSnapshot,
  snapshotSourceOf,
} from './take-snapshot.ts'
