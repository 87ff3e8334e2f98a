import type {
  DeregisterAgentCommand,
  OpenSessionAndRegisterCommand,
  RegisterAgentCommand,
  UpdateAgentCommand,
} from './commands.ts'
import type { ApplyContext } from './context.ts'
import { type CommandResult, errorResult, OK, UNCHANGED } from './results.ts'
import { type SessionEndListener, type SessionTable, sessionExpired } from './sessions.ts'
import { isConcurrency, isIdList, isLabels } from './task-spec.ts'
import { checkSnapshot, isCount, isId, isRecord, snapshotArray } from './validate.ts'

/** A registered agent as queries show it. */
export interface RegisteredAgent {
  agentId: string
  /** Unique among registered agents. */
  name: string
  /** The session it is bound to (the latest it registered with). */
  sessionId: string
  addrs: string[]
  capabilities: string[]
  labels: Record<string, string>
  /** Task slots. */
  concurrency: number
  /** Whether a worker of it runs: the scheduler places tasks only on agents that run them. */
  runsTasks: boolean
  /** True while its session lives; a down agent stays listed until it deregisters or its name is taken. */
  alive: boolean
  /** State time of its first registration. */
  registeredAt: number
  /** State time of its last registration, update or end of session. */
  updatedAt: number
  /** Its SPIFFE ID, when it registered with one (SPIFFE identities on). */
  spiffeId?: string
}

/** What the scheduler reads of an agent. Internal records: do not mutate. */
export interface AgentRecord extends RegisteredAgent {
  /** `capabilities` as a set, for the scheduler's subset checks. Derived; not in snapshots. */
  readonly capabilitySet: ReadonlySet<string>
}

/** Agent section of a snapshot, in table order. */
export type AgentSnapshot = RegisteredAgent

/** Why an agent stopped being schedulable. */
export type AgentDownReason = 'session' | 'left'

/**
 * A module that places work on agents (tasks) and must react when one goes down or changes. Called in the
 * entry that makes the change: `onAgentDown` before the record changes (the agent's old fields are still
 * readable, `alive` already false unless it re-registered), `onAgentChanged` after.
 */
export interface AgentListener {
  onAgentDown(agentId: string, reason: AgentDownReason, context: ApplyContext): void
  onAgentChanged(agentId: string, context: ApplyContext): void
}

/**
 * The agent registry: addresses, names, capabilities and task slots of every agent, cluster-wide. An agent
 * is bound to a session and counts as alive while it lives (Consul's model). Names are unique: a name held
 * by a down agent can be taken by another, which makes the registry forget the down one.
 */
export class MemberTable implements SessionEndListener {
  private readonly records = new Map<string, AgentRecord>()
  /** Agent id by name, for every record. Derived. */
  private readonly idsByName = new Map<string, string>()
  /** Agents bound to each session. Derived. */
  private readonly idsBySession = new Map<string, Set<string>>()
  private readonly listeners: AgentListener[] = []
  private readonly sessions: SessionTable

  constructor(sessions: SessionTable) {
    this.sessions = sessions
  }

  addListener(listener: AgentListener): void {
    this.listeners.push(listener)
  }

  /** The live record, for other modules; do not mutate. */
  record(agentId: string): AgentRecord | undefined {
    return this.records.get(agentId)
  }

  /** All live records in table order, for other modules; do not mutate. */
  allRecords(): IterableIterator<AgentRecord> {
    return this.records.values()
  }

  agent(agentId: string): RegisteredAgent | undefined {
    const record = this.records.get(agentId)
    return record === undefined ? undefined : toView(record)
  }

  agentByName(name: string): RegisteredAgent | undefined {
    const agentId = this.idsByName.get(name)
    return agentId === undefined ? undefined : this.agent(agentId)
  }

  /** Every registered agent, alive or down, in order of first registration. */
  agents(): RegisteredAgent[] {
    const agents: RegisteredAgent[] = []
    for (const record of this.records.values()) agents.push(toView(record))
    return agents
  }

  register(command: RegisterAgentCommand, context: ApplyContext): CommandResult {
    const { agentId, sessionId } = command
    if (!this.sessions.isLive(sessionId, context)) return sessionExpired(sessionId)
    const owner = this.sessions.info(sessionId)?.agentId
    if (owner !== agentId) {
      return errorResult('SessionMismatch', `session ${sessionId} belongs to ${owner}, not ${agentId}`)
    }
    const taken = this.claimName(command.name, agentId, context)
    if (taken !== undefined) return taken
    const existing = this.records.get(agentId)
    if (existing?.alive && existing.sessionId !== sessionId) {
      // A new incarnation (a restart): whatever the old one was running is lost with it.
      for (const listener of this.listeners) listener.onAgentDown(agentId, 'session', context)
    }
    if (existing !== undefined) this.unindex(existing)
    const record: AgentRecord = {
      agentId,
      name: command.name,
      sessionId,
      addrs: [...command.addrs],
      capabilities: [...command.capabilities],
      labels: copyLabels(command.labels),
      concurrency: command.concurrency,
      runsTasks: command.runsTasks ?? true,
      alive: true,
      registeredAt: existing === undefined ? context.time : existing.registeredAt,
      updatedAt: context.time,
      capabilitySet: new Set(command.capabilities),
    }
    if (command.spiffeId !== undefined) record.spiffeId = command.spiffeId
    // Replacing in place keeps the table order (first registration) for an existing agent.
    this.records.set(agentId, record)
    this.index(record)
    context.events.push({
      type: 'agentChanged',
      agentId,
      change: existing === undefined ? 'registered' : 'updated',
    })
    for (const listener of this.listeners) listener.onAgentChanged(agentId, context)
    return OK
  }

  /**
   * Opens the session and registers the agent under it, or refuses before either (see
   * `OpenSessionAndRegisterCommand`): the refusals `openSession` and `registerAgent` would give are checked
   * first, so nothing is written on one.
   */
  openSessionAndRegister(command: OpenSessionAndRegisterCommand, context: ApplyContext): CommandResult {
    const { type: _, ttlMs, ...registration } = command
    const { agentId, sessionId, name } = command
    const owner = this.sessions.info(sessionId)?.agentId
    if (owner !== undefined && owner !== agentId) {
      return errorResult('InvalidCommand', `session ${sessionId} belongs to another agent`)
    }
    const holderId = this.idsByName.get(name)
    if (holderId !== undefined && holderId !== agentId && this.records.get(holderId)?.alive === true) {
      return errorResult('NameTaken', `name ${name} is held by agent ${holderId}`)
    }
    const opened = this.sessions.open({ type: 'openSession', sessionId, agentId, ttlMs }, context)
    if (opened.type !== 'session') return opened
    // The checks above are every refusal of `register` for a live session of this agent.
    const registered = this.register({ type: 'registerAgent', ...registration }, context)
    return registered.type === 'error' ? registered : opened
  }

  update(command: UpdateAgentCommand, context: ApplyContext): CommandResult {
    const existing = this.records.get(command.agentId)
    if (existing === undefined) return errorResult('NotFound', `agent ${command.agentId} is not registered`)
    if (command.name !== undefined) {
      const taken = this.claimName(command.name, command.agentId, context)
      if (taken !== undefined) return taken
    }
    this.unindex(existing)
    const capabilities = command.capabilities ?? existing.capabilities
    const record: AgentRecord = {
      ...existing,
      name: command.name ?? existing.name,
      addrs: command.addrs === undefined ? existing.addrs : [...command.addrs],
      capabilities: [...capabilities],
      labels: command.labels === undefined ? existing.labels : copyLabels(command.labels),
      concurrency: command.concurrency ?? existing.concurrency,
      runsTasks: command.runsTasks ?? existing.runsTasks,
      updatedAt: context.time,
      capabilitySet: new Set(capabilities),
    }
    this.records.set(record.agentId, record)
    this.index(record)
    context.events.push({ type: 'agentChanged', agentId: record.agentId, change: 'updated' })
    if (record.alive) for (const listener of this.listeners) listener.onAgentChanged(record.agentId, context)
    return OK
  }

  deregister(command: DeregisterAgentCommand, context: ApplyContext): CommandResult {
    const record = this.records.get(command.agentId)
    if (record === undefined) return UNCHANGED
    this.forget(record, context)
    return OK
  }

  onSessionEnd(sessionId: string, context: ApplyContext): void {
    const ids = this.idsBySession.get(sessionId)
    if (ids === undefined) return
    this.idsBySession.delete(sessionId)
    // Sorted: the set's order depends on history (and is rebuilt on restore); events must not.
    for (const agentId of [...ids].sort()) {
      const record = this.records.get(agentId)
      if (record === undefined || !record.alive) continue
      record.alive = false
      record.updatedAt = context.time
      context.events.push({ type: 'agentChanged', agentId, change: 'down' })
      for (const listener of this.listeners) listener.onAgentDown(agentId, 'session', context)
    }
  }

  toSnapshot(): AgentSnapshot[] {
    const agents: AgentSnapshot[] = []
    for (const record of this.records.values()) agents.push(toView(record))
    return agents
  }

  restore(data: unknown): void {
    for (const agent of snapshotArray(data, 'agents')) {
      checkSnapshot(
        isRecord(agent) &&
          isId(agent.agentId) &&
          isId(agent.name) &&
          isId(agent.sessionId) &&
          isIdList(agent.addrs) &&
          isIdList(agent.capabilities) &&
          isLabels(agent.labels) &&
          isConcurrency(agent.concurrency) &&
          (agent.runsTasks === undefined || typeof agent.runsTasks === 'boolean') &&
          typeof agent.alive === 'boolean' &&
          isCount(agent.registeredAt) &&
          isCount(agent.updatedAt) &&
          (agent.spiffeId === undefined || isId(agent.spiffeId)) &&
          !this.records.has(agent.agentId) &&
          !this.idsByName.has(agent.name),
        'agents',
      )
      const record: AgentRecord = {
        agentId: agent.agentId,
        name: agent.name,
        sessionId: agent.sessionId,
        addrs: [...agent.addrs],
        capabilities: [...agent.capabilities],
        labels: copyLabels(agent.labels),
        concurrency: agent.concurrency,
        runsTasks: agent.runsTasks ?? true,
        alive: agent.alive,
        registeredAt: agent.registeredAt,
        updatedAt: agent.updatedAt,
        capabilitySet: new Set(agent.capabilities),
      }
      if (agent.spiffeId !== undefined) record.spiffeId = agent.spiffeId as string
      this.records.set(record.agentId, record)
      this.index(record)
    }
  }

  /**
   * Lets `agentId` take `name`: refused if another live agent holds it; a down holder is forgotten.
   * Answers the refusal, or undefined when the name is free for it.
   */
  private claimName(name: string, agentId: string, context: ApplyContext): CommandResult | undefined {
    const holderId = this.idsByName.get(name)
    if (holderId === undefined || holderId === agentId) return undefined
    const holder = this.records.get(holderId)!
    if (holder.alive) return errorResult('NameTaken', `name ${name} is held by agent ${holderId}`)
    this.forget(holder, context)
    return undefined
  }

  private forget(record: AgentRecord, context: ApplyContext): void {
    this.records.delete(record.agentId)
    this.unindex(record)
    context.events.push({ type: 'agentChanged', agentId: record.agentId, change: 'left' })
    if (record.alive) {
      record.alive = false
      for (const listener of this.listeners) listener.onAgentDown(record.agentId, 'left', context)
    }
  }

  private index(record: AgentRecord): void {
    this.idsByName.set(record.name, record.agentId)
    if (!record.alive) return
    let ids = this.idsBySession.get(record.sessionId)
    if (ids === undefined) {
      ids = new Set()
      this.idsBySession.set(record.sessionId, ids)
    }
    ids.add(record.agentId)
  }

  private unindex(record: AgentRecord): void {
    if (this.idsByName.get(record.name) === record.agentId) this.idsByName.delete(record.name)
    const ids = this.idsBySession.get(record.sessionId)
    if (ids === undefined) return
    ids.delete(record.agentId)
    if (ids.size === 0) this.idsBySession.delete(record.sessionId)
  }
}

function copyLabels(labels: Record<string, string>): Record<string, string> {
  // fromEntries defines properties (a `__proto__` label stays a label), unlike assignment.
  return Object.fromEntries(Object.entries(labels))
}

function toView(record: AgentRecord): RegisteredAgent {
  return {
    agentId: record.agentId,
    name: record.name,
    sessionId: record.sessionId,
    addrs: [...record.addrs],
    capabilities: [...record.capabilities],
    labels: copyLabels(record.labels),
    concurrency: record.concurrency,
    runsTasks: record.runsTasks,
    alive: record.alive,
    registeredAt: record.registeredAt,
    updatedAt: record.updatedAt,
    ...(record.spiffeId === undefined ? {} : { spiffeId: record.spiffeId }),
  }
}
