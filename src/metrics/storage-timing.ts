import type { RaftStorage } from '../storage/index.ts'
import { type TimedStorage, timedStorage as timedOn } from '../storage/timed-storage.ts'

/**
 * `storage` wrapped in a `TimedStorage` for the metrics (an already timed one is returned as is). Timed on
 * `now`, monotonic ms, by default the process's real clock: a storage call's latency is real I/O time,
 * whatever clock the agent runs on.
 */
export function timedStorage(
  storage: RaftStorage,
  now: () => number = () => performance.now(),
): TimedStorage {
  return timedOn(storage, now)
}
