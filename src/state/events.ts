import type { JsonValue } from './json.ts'

/**
 * What applying an entry tells the shell, which turns these into API behaviour (watch streams, lock
 * grants, lost locks, leader changes). Every replica emits the same events for the same entry.
 */
export type StateEvent =
  | KvEvent
  | LockGrantedEvent
  | LockReleasedEvent
  | SessionExpiredEvent
  | SessionClosedEvent
  | ElectionChangedEvent

export interface KvEvent {
  type: 'kv'
  op: 'put' | 'delete'
  key: string
  /** The new value of a put; absent for a delete. */
  value?: JsonValue
  /** The store revision this mutation created. */
  revision: number
  /** State time (leader ms) of the entry. */
  timestamp: number
}

export interface LockGrantedEvent {
  type: 'lockGranted'
  key: string
  sessionId: string
  requestId: string
  /** The Raft index of the granting entry. */
  fencingToken: number
  expiresAt: number
}

export interface LockReleasedEvent {
  type: 'lockReleased'
  key: string
  sessionId: string
  requestId: string
  fencingToken: number
  /** `released` by the holder (or a cancelled request), `expired` lease, or its `session` ended. */
  reason: 'released' | 'expired' | 'session'
}

export interface SessionExpiredEvent {
  type: 'sessionExpired'
  sessionId: string
  agentId: string
  /** `ttl`: not kept alive; `dead`: membership declared the agent dead. */
  reason: 'ttl' | 'dead'
}

export interface SessionClosedEvent {
  type: 'sessionClosed'
  sessionId: string
  agentId: string
}

export interface ElectionLeader {
  agentId: string
  sessionId: string
  requestId: string
}

export interface ElectionChangedEvent {
  type: 'electionChanged'
  name: string
  /** Absent when the last candidate left. */
  leader?: ElectionLeader
  /** Increases with every new leader; unchanged when the election becomes leaderless. */
  term: number
  timestamp: number
}
