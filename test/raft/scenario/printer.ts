/**
 * One stable line per message, entry and state, in etcd-io/raft's style, so a scenario reads like a trace of
 * the paper's RPCs: `1->2 MsgApp Term:2 Log:1/3 Commit:3 Entries:[2/4 EntryNormal "data"]`.
 * `term/index` pairs are written term first, as etcd does (`Log:` is the previous entry of an append).
 */

import { decodeConfig } from '../../../src/raft/config.ts'
import type {
  Config,
  Entry,
  HardState,
  Message,
  RaftStatus,
  Ready,
  Snapshot,
} from '../../../src/raft/types.ts'

const decoder = new TextDecoder()

function ids(list: readonly string[]): string {
  return `(${list.join(' ')})`
}

export function formatConfig(config: Config): string {
  const voters = `voters=${ids(config.voters)}`
  return config.nonVoters.length === 0 ? voters : `${voters} nonVoters=${ids(config.nonVoters)}`
}

export function formatEntry(entry: Entry): string {
  const position = `${entry.term}/${entry.index}`
  if (entry.type === 'config') return `${position} EntryConfig ${formatConfig(decodeConfig(entry.data))}`
  return `${position} EntryNormal ${JSON.stringify(decoder.decode(entry.data))}`
}

function who(id: string): string {
  return id === '' ? 'none' : id
}

export function formatHardState(state: HardState): string {
  return `HardState Term:${state.term} Vote:${who(state.vote)} Commit:${state.commit}`
}

export function formatSnapshot(snapshot: Snapshot): string {
  const { meta } = snapshot
  return `Snapshot ${meta.term}/${meta.index} ${formatConfig(meta.config)} Bytes:${snapshot.data.length}`
}

export function formatMessage(m: Message): string {
  const head = `${m.from}->${m.to}`
  switch (m.type) {
    case 'vote':
    case 'preVote': {
      const kind = m.type === 'vote' ? 'MsgVote' : 'MsgPreVote'
      return `${head} ${kind} Term:${m.term} Log:${m.lastLogTerm}/${m.lastLogIndex}${m.transfer ? ' Transfer' : ''}`
    }
    case 'voteResponse':
    case 'preVoteResponse': {
      const kind = m.type === 'voteResponse' ? 'MsgVoteResp' : 'MsgPreVoteResp'
      return `${head} ${kind} Term:${m.term}${m.granted ? '' : ' Rejected'}`
    }
    case 'append': {
      let line = `${head} MsgApp Term:${m.term} Log:${m.prevLogTerm}/${m.prevLogIndex} Commit:${m.leaderCommit}`
      if (m.entries.length > 0) line += ` Entries:[${m.entries.map(formatEntry).join(', ')}]`
      if (m.commitOnly) line += ' CommitOnly'
      if (m.notify && m.notify.length > 0) line += ` Notify:${ids(m.notify)}`
      return line
    }
    case 'appendResponse':
      return m.success
        ? `${head} MsgAppResp Term:${m.term} Index:${m.index}`
        : `${head} MsgAppResp Term:${m.term} Rejected Index:${m.index} Hint:${m.hintTerm}/${m.hintIndex}`
    case 'heartbeat':
      return `${head} MsgHeartbeat Term:${m.term} Commit:${m.leaderCommit}${context(m.context)}`
    case 'heartbeatResponse':
      return `${head} MsgHeartbeatResp Term:${m.term}${context(m.context)}`
    case 'snapshot':
      return (
        `${head} MsgSnap Term:${m.term} Snapshot:${m.meta.term}/${m.meta.index} ${formatConfig(m.meta.config)}` +
        ` Offset:${m.offset} Bytes:${m.data.length}${m.done ? ' Done' : ''}`
      )
    case 'snapshotResponse':
      return `${head} MsgSnapResp Term:${m.term} Index:${m.index} Offset:${m.offset}${m.done ? ' Done' : ''}`
    case 'timeoutNow':
      return `${head} MsgTimeoutNow Term:${m.term}`
    case 'readIndex':
      return `${head} MsgReadIndex Term:${m.term}${context(m.context)}`
    case 'readIndexResponse':
      return `${head} MsgReadIndexResp Term:${m.term}${context(m.context)} Index:${m.index}`
  }
}

function context(value: string): string {
  return value === '' ? '' : ` Context:${value}`
}

/** A Ready, section by section in the order the shell handles it; empty sections are left out. */
export function formatReady(ready: Ready): string[] {
  const lines = ['Ready:']
  if (ready.softState) lines.push(`Lead:${who(ready.softState.leader)} State:${ready.softState.role}`)
  if (ready.hardState) lines.push(formatHardState(ready.hardState))
  if (ready.snapshot) lines.push(formatSnapshot(ready.snapshot))
  if (ready.entries.length > 0) lines.push('Entries:', ...ready.entries.map(formatEntry))
  if (ready.messages.length > 0) lines.push('Messages:', ...ready.messages.map(formatMessage))
  if (ready.committed.length > 0) lines.push('Committed:', ...ready.committed.map(formatEntry))
  if (ready.readStates.length > 0) {
    lines.push('ReadStates:', ...ready.readStates.map(r => `Context:${r.context} Index:${r.index}`))
  }
  return lines
}

/** What `RaftCore.status()` says, the leader's view of each peer included. */
export function formatStatus(status: RaftStatus): string[] {
  const lines = [
    `${status.id} ${status.role} Term:${status.term} Vote:${who(status.vote)} Lead:${who(status.leader)}` +
      ` Commit:${status.commit} Applied:${status.applied} LastIndex:${status.lastIndex}`,
    formatConfig(status.config),
  ]
  if (status.progress) {
    for (const [peer, p] of Object.entries(status.progress).sort(([a], [b]) => a.localeCompare(b))) {
      lines.push(`${peer}: ${p.state} match=${p.match} next=${p.next}${p.recentActive ? '' : ' inactive'}`)
    }
  }
  if (status.transferee !== undefined) lines.push(`transferring to ${status.transferee}`)
  return lines
}
