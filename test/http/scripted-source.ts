/** A `DashboardSource` whose members, leader and events a test sets: for tests of the dashboard alone. */
import type { AgentInfo } from '../../src/api.ts'
import type { CoordinationView, DashboardSource, SourceEvent } from '../../src/http/source.ts'

/** A source whose members, leader and events the test sets. */
export class ScriptedSource implements DashboardSource {
  readonly id = 'self-id'
  readonly name = 'self'
  secured = false
  leader = 'leader-id'
  term = 4
  list: AgentInfo[] = [member('leader-id', 'boss', 'voter'), member('self-id', 'self', 'voter')]
  coordinationView?: CoordinationView
  private readonly listeners = new Set<(event: SourceEvent) => void>()

  async members(): Promise<AgentInfo[]> {
    return this.list.map(item => ({ ...item }))
  }
  leadership() {
    return { leader: this.leader, term: this.term }
  }
  replication() {
    return { commit: 10, applied: 9, lastIndex: 10, voters: ['leader-id', 'self-id'], nonVoters: [] }
  }
  coordination() {
    return this.coordinationView
  }
  subscribe(listener: (event: SourceEvent) => void) {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
  emit(event: SourceEvent): void {
    for (const listener of this.listeners) listener(event)
  }
}

export function member(
  id: string,
  name: string,
  role: AgentInfo['role'],
  status: AgentInfo['status'] = 'alive',
): AgentInfo {
  return {
    id,
    name,
    addrs: [],
    capabilities: [],
    labels: {},
    role,
    replica: true,
    status,
    load: 0.5,
    lastSeen: new Date(),
  }
}
