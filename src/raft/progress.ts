/**
 * The leader's view of one follower: how far its log matches, what to send next, and the flow-control window
 * of append messages in flight (bounded by count and by bytes).
 */

import type { Progress, Snapshot } from './types.ts'

/** A ring of the append messages in flight to one follower: last index and data bytes of each. */
export class Inflights {
  private readonly lastIndexes: Float64Array
  private readonly sizes: Float64Array
  private start = 0
  /** Messages in flight. */
  count = 0
  /** Entry bytes in flight. */
  bytes = 0
  private readonly maxMessages: number
  private readonly maxBytes: number

  constructor(maxMessages: number, maxBytes: number) {
    this.maxMessages = Math.max(1, maxMessages)
    this.maxBytes = maxBytes
    this.lastIndexes = new Float64Array(this.maxMessages)
    this.sizes = new Float64Array(this.maxMessages)
  }

  /** Records a message whose last entry is `lastIndex` (increasing from call to call). */
  add(lastIndex: number, bytes: number): void {
    let slot = this.start + this.count
    if (slot >= this.maxMessages) slot -= this.maxMessages
    this.lastIndexes[slot] = lastIndex
    this.sizes[slot] = bytes
    this.count++
    this.bytes += bytes
  }

  /** The follower acknowledged everything up to `index`: free the messages it covers. */
  freeLE(index: number): void {
    while (this.count > 0 && this.lastIndexes[this.start] <= index) {
      this.bytes -= this.sizes[this.start]
      this.count--
      this.start++
      if (this.start === this.maxMessages) this.start = 0
    }
    if (this.count === 0) {
      this.start = 0
      this.bytes = 0
    }
  }

  full(): boolean {
    return this.count >= this.maxMessages || this.bytes >= this.maxBytes
  }

  reset(): void {
    this.start = 0
    this.count = 0
    this.bytes = 0
  }
}

export type ProgressState = Progress['state']

export class PeerProgress {
  /** Highest index known to match the leader's log. */
  match = 0
  /** Next index to send; entries in (match, next) are in flight. */
  next: number
  state: ProgressState = 'probe'
  /** Heard from within the current check-quorum window. */
  recentActive = false
  /**
   * In probe: a probe is out, wait for its answer or a heartbeat response. In replicate: an empty append went
   * out while everything was in flight; the next one waits for a heartbeat response (so lost appends are
   * eventually detected without flooding the follower).
   */
  paused = false
  /** Highest commit index sent in an append, kept below `next`. */
  pendingCommit = 0
  readonly inflights: Inflights
  /** In snapshot state: the snapshot being sent, and the bytes the follower acknowledged in order. */
  snapshotIndex = 0
  snapshotOffset = 0
  /**
   * The end of the last chunk sent: chunks in [snapshotOffset, snapshotSent) are in flight (a window of up to
   * `maxInflightSnapshotChunks`). Set back to `snapshotOffset` to send again what was lost.
   */
  snapshotSent = 0
  /** The last chunk (`done`) is among those sent: nothing more to send until acknowledged or resent. */
  snapshotSentAll = false
  /** The snapshot whose transfer is under way: kept to its end even if the leader compacts again meanwhile. */
  sending: Snapshot | undefined
  /** Ticks since a chunk last went out or was acknowledged, to resend the window when one was lost. */
  ticksSinceChunk = 0

  constructor(next: number, maxInflightMessages: number, maxInflightBytes: number) {
    this.next = next
    this.inflights = new Inflights(maxInflightMessages, maxInflightBytes)
  }

  private resetState(state: ProgressState): void {
    this.state = state
    this.paused = false
    this.snapshotIndex = 0
    this.snapshotOffset = 0
    this.snapshotSent = 0
    this.snapshotSentAll = false
    this.sending = undefined
    this.ticksSinceChunk = 0
    this.inflights.reset()
  }

  becomeProbe(next = this.match + 1): void {
    this.resetState('probe')
    this.next = Math.max(next, this.match + 1)
    this.pendingCommit = Math.min(this.pendingCommit, this.match)
  }

  becomeReplicate(): void {
    this.resetState('replicate')
    this.next = this.match + 1
    this.pendingCommit = Math.min(this.pendingCommit, this.match)
  }

  /** In snapshot state: send again every chunk not acknowledged (one was lost, or the follower lost them). */
  resendSnapshot(): void {
    this.snapshotSent = this.snapshotOffset
    this.snapshotSentAll = false
  }

  /** In snapshot state: chunks are out that the follower has not acknowledged. */
  snapshotInFlight(): boolean {
    return this.snapshotSentAll || this.snapshotSent > this.snapshotOffset
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot')
    this.snapshotIndex = snapshotIndex
  }

  /** An acknowledgement up to `index`; false when it tells nothing new. */
  maybeUpdate(index: number): boolean {
    if (index <= this.match) return false
    this.match = index
    if (this.next <= index) this.next = index + 1
    return true
  }

  /** An append with `count` entries and `bytes` of data went out. */
  sentEntries(count: number, bytes: number): void {
    if (this.state === 'replicate' && count > 0) {
      this.next += count
      this.inflights.add(this.next - 1, bytes)
    }
    this.paused = true
  }

  /** At least one more entry may be sent now. */
  canSendEntries(lastIndex: number): boolean {
    if (this.next > lastIndex) return false
    return this.state === 'probe' ? !this.paused : this.state === 'replicate' && !this.inflights.full()
  }

  /** Sending `commit` could advance the follower's commit index. */
  canBumpCommit(commit: number): boolean {
    return this.pendingCommit < Math.min(commit, this.next - 1)
  }

  sentCommit(commit: number): void {
    this.pendingCommit = Math.min(Math.max(this.pendingCommit, commit), this.next - 1)
  }

  /** Whether an append (with entries or empty) should go out now. */
  shouldSendAppend(lastIndex: number, commit: number): boolean {
    switch (this.state) {
      case 'probe':
        return !this.paused
      case 'replicate':
        return (
          this.canBumpCommit(commit) ||
          (this.match < lastIndex && (!this.paused || this.canSendEntries(lastIndex)))
        )
      default:
        return false
    }
  }

  /** The public, plain-data view. */
  view(): Progress {
    return { match: this.match, next: this.next, state: this.state, recentActive: this.recentActive }
  }
}
