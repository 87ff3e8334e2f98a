import type { StateEvent } from './events.ts'

/** What a module sees of the entry being applied. One object per state machine, reused for every entry. */
export interface ApplyContext {
  /** Raft index of the entry: the fencing token of any lock it grants. */
  index: number
  /** State time in ms after this entry's timestamp: max of all envelope timestamps so far. */
  time: number
  /** Events of this entry, in the order they happened; modules append. */
  events: StateEvent[]
  /**
   * The proposer's session and sequence number of this entry (its order among that session's requests), from
   * command-set version 3 on; undefined for an entry without them or in a cluster below version 3.
   */
  request?: { session: string; seq: number }
}
