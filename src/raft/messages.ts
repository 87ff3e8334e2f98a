/**
 * Shape checks on incoming messages. The core trusts its peers to run Raft, but a message that is well typed
 * and still malformed (fractional or negative indexes, entries that are not consecutive) must not corrupt the
 * log or make `step` throw: such messages are dropped.
 */

import type { Entry, Message } from './types.ts'

// Half the safe range, so that `term + 1` and `index + count` stay exact whatever a peer sends.
const MAX_INDEX = 2 ** 52

/**
 * The highest term a node moves to: far below {@link MAX_INDEX}, so that a term can never reach the edge of
 * what the codecs encode (where no vote request could be sent any more). At one election a second, 2^48 is
 * nine million years.
 */
export const MAX_TERM = 2 ** 48

/**
 * How far one message may move a node's term. A follower that missed elections learns their count at once;
 * 2^24 (16.7 million elections) is beyond any real history, so a larger jump is forged or corrupted.
 */
export const MAX_TERM_ADVANCE = 2 ** 24

function isIndex(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0 && value <= MAX_INDEX
}

function entriesWellFormed(
  entries: readonly Entry[],
  prevLogIndex: number,
  prevLogTerm: number,
  term: number,
): boolean {
  let previousTerm = prevLogTerm
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]
    if (entry.index !== prevLogIndex + 1 + i) return false
    // Terms never decrease along a log, and no entry is newer than the leader sending it.
    if (!isIndex(entry.term) || entry.term < previousTerm || entry.term > term) return false
    if (!(entry.data instanceof Uint8Array) || (entry.type !== 'normal' && entry.type !== 'config'))
      return false
    previousTerm = entry.term
  }
  return true
}

/** Whether `message` is consistent enough to be handled. */
export function isWellFormed(message: Message): boolean {
  if (typeof message.from !== 'string' || message.from === '' || !isIndex(message.term)) return false
  switch (message.type) {
    case 'vote':
    case 'preVote':
      return isIndex(message.lastLogIndex) && isIndex(message.lastLogTerm)
    case 'voteResponse':
    case 'preVoteResponse':
      return typeof message.granted === 'boolean'
    case 'append':
      return (
        isIndex(message.prevLogIndex) &&
        isIndex(message.prevLogTerm) &&
        isIndex(message.leaderCommit) &&
        Array.isArray(message.entries) &&
        (message.notify === undefined ||
          (Array.isArray(message.notify) && message.notify.every(peer => typeof peer === 'string'))) &&
        entriesWellFormed(message.entries, message.prevLogIndex, message.prevLogTerm, message.term)
      )
    case 'appendResponse':
      return isIndex(message.index) && isIndex(message.hintIndex) && isIndex(message.hintTerm)
    case 'heartbeat':
      return isIndex(message.leaderCommit) && typeof message.context === 'string'
    case 'heartbeatResponse':
      return typeof message.context === 'string'
    case 'snapshot':
      return (
        isIndex(message.meta?.index) &&
        isIndex(message.meta.term) &&
        message.meta.term <= message.term &&
        Array.isArray(message.meta.config?.voters) &&
        Array.isArray(message.meta.config.nonVoters) &&
        isIndex(message.offset) &&
        message.data instanceof Uint8Array
      )
    case 'snapshotResponse':
      return isIndex(message.index) && Number.isSafeInteger(message.offset) && message.offset >= -1
    case 'timeoutNow':
      return true
    case 'readIndex':
      return typeof message.context === 'string'
    case 'readIndexResponse':
      return typeof message.context === 'string' && isIndex(message.index)
    default:
      return false
  }
}
