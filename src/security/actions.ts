/**
 * Which policy action a peer's request needs: for a command forwarded to the leader, and for a Raft
 * message. The tables are total over the command and message types, so adding a type without deciding
 * its action is a compile error.
 */

import type { MessageType } from '../raft/types.ts'
import type { Command, CommandType } from '../state/commands.ts'
import type { Action } from './policy.ts'

const COMMAND_ACTIONS: Record<CommandType, Action> = {
  put: 'write',
  delete: 'write',
  openSession: 'join',
  keepAlive: 'join',
  closeSession: 'join',
  registerAgent: 'join',
  openSessionAndRegister: 'join',
  updateAgent: 'join',
  deregisterAgent: 'join',
  lockAcquire: 'lock',
  lockRelease: 'lock',
  lockExtend: 'lock',
  lockCancel: 'lock',
  campaign: 'lock',
  resign: 'lock',
  submitTask: 'submitTask',
  cancelTask: 'submitTask',
  claimTask: 'runTask',
  completeTask: 'runTask',
  failTask: 'runTask',
  stealTask: 'runTask',
  submitTasks: 'submitTask',
  runTasks: 'runTask',
  pauseTasks: 'submitTask',
  resumeTasks: 'submitTask',
  taskProgress: 'runTask',
  // The leader's housekeeping: only a (former) leader proposes these, and a leader is a voter.
  expireSession: 'vote',
  lockExpire: 'vote',
  timeoutTask: 'vote',
  retryDue: 'vote',
  expireTask: 'vote',
  releaseTask: 'vote',
  createOccurrence: 'vote',
  forgetTasks: 'vote',
  // Cluster administration: the agent that founds the cluster, a voter, sets the voter target.
  setVoterTarget: 'vote',
  // The leader raises the cluster version once every replica supports it.
  setClusterVersion: 'vote',
  // Cluster administration, like the voter target: the founder commits the cap on finished tasks.
  setMaxFinishedTasks: 'vote',
  putEphemeral: 'write',
  txn: 'write',
  semaphoreAcquire: 'lock',
  proclaim: 'lock',
}

/** The action a command needs from the agent that sends it. */
export function commandAction(command: Pick<Command, 'type'>): Action {
  const action = COMMAND_ACTIONS[command.type]
  // A type from a newer peer that this agent does not know: only voters may send what is not understood.
  return action ?? 'vote'
}

/**
 * The action a Raft message needs from its sender. A non-voter only answers the leader (append,
 * heartbeat and snapshot responses) and relays ReadIndex requests; everything a candidate or a leader
 * sends needs `vote`.
 */
const RAFT_ACTIONS: Record<MessageType, Action> = {
  appendResponse: 'join',
  heartbeatResponse: 'join',
  snapshotResponse: 'join',
  readIndex: 'join',
  vote: 'vote',
  preVote: 'vote',
  voteResponse: 'vote',
  preVoteResponse: 'vote',
  append: 'vote',
  heartbeat: 'vote',
  snapshot: 'vote',
  timeoutNow: 'vote',
  readIndexResponse: 'vote',
}

/** The action a Raft message of `type` needs from its sender. */
export function raftMessageAction(type: MessageType): Action {
  return RAFT_ACTIONS[type] ?? 'vote'
}

/**
 * The agent a command acts for, when it names one: an agent may act only for itself, unless it may `vote`
 * (voters administer the cluster, e.g. deregister a dead agent).
 */
export function commandAgent(command: Command): string | undefined {
  switch (command.type) {
    case 'openSession':
    case 'registerAgent':
    case 'openSessionAndRegister':
    case 'updateAgent':
    case 'deregisterAgent':
    case 'claimTask':
    case 'runTasks':
    case 'campaign':
      return command.agentId
    case 'completeTask':
    case 'failTask':
      return command.agentId
    case 'stealTask':
      return command.toAgentId
    default:
      return undefined
  }
}

/** The session a command acts in, when it names one. */
export function commandSession(command: Command): string | undefined {
  return 'sessionId' in command && typeof command.sessionId === 'string' ? command.sessionId : undefined
}

/**
 * Why a command from `sender` is refused, or undefined when it is allowed: the sender's SPIFFE ID must be
 * allowed the command's action; a command naming an agent must name the sender, one naming a session must
 * name one of the sender's (when `sessionOwner` can tell), and a registration carrying a SPIFFE ID must
 * carry the sender's own, unless the sender may `vote`.
 */
export function refuseCommand(
  command: Command,
  sender: { peerId: string; spiffeId: string },
  authorize: (spiffeId: string, action: Action) => boolean,
  sessionOwner?: (sessionId: string) => string | undefined,
): string | undefined {
  const action = commandAction(command)
  if (!authorize(sender.spiffeId, action)) {
    return `${sender.spiffeId} may not ${action} (command ${command.type})`
  }
  if (authorize(sender.spiffeId, 'vote')) return undefined
  if ((command.type === 'completeTask' || command.type === 'failTask') && command.agentId === undefined) {
    // Unnamed, the state machine could not hold the attempt to its assignee.
    return `${sender.spiffeId} (${sender.peerId}) must name itself as the agent of ${command.type}`
  }
  const agent = commandAgent(command)
  if (agent !== undefined && agent !== sender.peerId) {
    return `${sender.spiffeId} (${sender.peerId}) may not send ${command.type} for agent ${agent}`
  }
  const session = commandSession(command)
  const opens = command.type === 'openSession' || command.type === 'openSessionAndRegister'
  const owner = session === undefined || opens ? undefined : sessionOwner?.(session)
  if (owner !== undefined && owner !== sender.peerId) {
    return `${sender.spiffeId} (${sender.peerId}) may not send ${command.type} in the session of agent ${owner}`
  }
  const claimed = (command as { spiffeId?: unknown }).spiffeId
  const registers = command.type === 'registerAgent' || command.type === 'openSessionAndRegister'
  if (registers && claimed !== undefined && claimed !== sender.spiffeId) {
    return `${sender.spiffeId} may not register as ${String(claimed)}`
  }
  return undefined
}
