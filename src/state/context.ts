import type { StateEvent } from './events.ts'

/** What a module sees of the entry being applied. One object per state machine, reused for every entry. */
export interface ApplyContext {
  /** Raft index of the entry: the fencing token of any lock it grants. */
  index: number
  /** State time in ms after this entry's timestamp: max of all envelope timestamps so far. */
  time: number
  /** Events of this entry, in the order they happened; modules append. */
  events: StateEvent[]
}
