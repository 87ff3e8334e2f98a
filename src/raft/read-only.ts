/**
 * ReadIndex on the leader (Raft dissertation §6.4): requests wait until the leader has committed an entry of
 * its term, then join a round that records the commit index and rides on a heartbeat; when a quorum of voters
 * has answered that heartbeat (or a later one), every request of the round may be served at that index.
 */

import { quorumSize } from './quorum.ts'
import type { NodeId, ReadContext } from './types.ts'

/** A read request: from this node (`from` = own id) or relayed by a follower. */
export interface ReadRequest {
  from: NodeId
  context: ReadContext
}

export interface ReadRound {
  seq: number
  index: number
  requests: ReadRequest[]
}

const ROUND_PREFIX = 'read:'

export class ReadOnlyQueue {
  private waiting: ReadRequest[] = []
  private rounds: ReadRound[] = []
  /** Highest round each voter has acknowledged. */
  private readonly acks = new Map<NodeId, number>()
  // Never reset, so a heartbeat answer from an earlier leadership can't be mistaken for a current round.
  private nextSeq = 1

  add(request: ReadRequest): void {
    this.waiting.push(request)
  }

  hasWaiting(): boolean {
    return this.waiting.length > 0
  }

  /** Starts a round at `index` for every waiting request; returns the heartbeat context that carries it. */
  startRound(index: number): ReadContext {
    const seq = this.nextSeq++
    this.rounds.push({ seq, index, requests: this.waiting })
    this.waiting = []
    return ROUND_PREFIX + seq
  }

  /** A heartbeat answer from `from` carrying `context`. */
  ack(from: NodeId, context: ReadContext): void {
    if (!context.startsWith(ROUND_PREFIX)) return
    const seq = Number(context.slice(ROUND_PREFIX.length))
    if (!Number.isSafeInteger(seq)) return
    if ((this.acks.get(from) ?? 0) < seq) this.acks.set(from, seq)
  }

  /**
   * Rounds confirmed by a quorum of `voters`, oldest first, removed from the queue. `self` counts for every
   * round when it is a voter: the leader confirms itself.
   */
  takeConfirmed(voters: readonly NodeId[], self: NodeId): ReadRound[] {
    const needed = quorumSize(voters.length)
    let done = 0
    while (done < this.rounds.length) {
      const seq = this.rounds[done].seq
      let count = 0
      for (const id of voters) {
        if (id === self || (this.acks.get(id) ?? 0) >= seq) count++
      }
      if (count < needed) break
      done++
    }
    return done === 0 ? [] : this.rounds.splice(0, done)
  }

  hasRounds(): boolean {
    return this.rounds.length > 0
  }

  /** Leadership ended: every pending request is dropped (the callers time out and retry). */
  reset(): void {
    this.waiting = []
    this.rounds = []
    this.acks.clear()
  }
}
