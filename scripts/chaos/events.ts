/**
 * Collects what happens inside the agents (leader changes, membership changes, steals, task outcomes,
 * lost locks) by polling each agent's event log, and turns it into one cluster-wide stream: each leader
 * change, suspicion, death and steal once, however many agents saw it.
 */
import type { Cluster } from './cluster.ts'
import type { History } from './history.ts'
import type { HostEvent } from './host-ops.ts'

/** An event as the cluster-wide stream shows it. */
export interface ClusterEvent {
  /** Wall-clock ms. */
  at: number
  kind: 'leader' | 'suspect' | 'dead' | 'alive' | 'steal' | 'lockLost' | 'harness'
  text: string
}

/** A member status reported again within this long by other agents is the same news. */
const SAME_NEWS_MS = 3000

export class EventCollector {
  private readonly cluster: Cluster
  private readonly history?: History
  private readonly cursors = new Map<number, { generation: number; next: number }>()
  private readonly seenLeaders = new Set<string>()
  private readonly memberNews = new Map<string, number>()
  private readonly listeners = new Set<(event: ClusterEvent) => void>()
  private timer?: NodeJS.Timeout
  private polling?: Promise<void>
  /** Every cluster-wide event so far. */
  readonly events: ClusterEvent[] = []
  leaderChanges = 0
  steals = 0
  suspicions = 0
  deaths = 0
  tasksCompleted = 0

  constructor(cluster: Cluster, history?: History) {
    this.cluster = cluster
    this.history = history
  }

  onEvent(listener: (event: ClusterEvent) => void): void {
    this.listeners.add(listener)
  }

  start(intervalMs = 300): void {
    this.timer = setInterval(() => {
      this.polling ??= this.poll().finally(() => {
        this.polling = undefined
      })
    }, intervalMs)
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.polling
    await this.poll()
  }

  /** An event of the harness itself (a fault, a phase), in the same stream. */
  note(text: string): void {
    this.emit({ at: Date.now(), kind: 'harness', text })
  }

  private nameOf(id: string): string {
    return this.cluster.slots.find(slot => slot.id === id)?.name ?? id.slice(-6)
  }

  async poll(): Promise<void> {
    await Promise.all(
      this.cluster.slots.map(async slot => {
        if (!slot.responsive) return
        let cursor = this.cursors.get(slot.index)
        if (cursor === undefined || cursor.generation !== slot.generation) {
          cursor = { generation: slot.generation, next: 0 }
          this.cursors.set(slot.index, cursor)
        }
        const from = cursor.next
        let events: HostEvent[]
        try {
          events = (await this.cluster.chaos(slot.index, { op: 'events', from }, 2000)) as HostEvent[]
        } catch {
          return
        }
        if (cursor.generation !== slot.generation || cursor.next !== from) return
        cursor.next = from + events.length
        for (const event of events) this.take(slot.name, event)
      }),
    )
  }

  private take(agent: string, event: HostEvent): void {
    switch (event.kind) {
      case 'leader': {
        // `resigned` names the leader that went (with the term that ended it): no news of a new leader.
        const news = `${event.leader}@${event.term}`
        if (event.type === 'resigned' || event.leader === '' || this.seenLeaders.has(news)) return
        this.seenLeaders.add(news)
        this.leaderChanges++
        this.emit({
          at: event.at,
          kind: 'leader',
          text: `${this.nameOf(event.leader)} leads (term ${event.term})`,
        })
        return
      }
      case 'member': {
        if (event.status !== 'suspect' && event.status !== 'dead' && event.type !== 'alive') return
        const status = event.type === 'alive' ? 'alive' : event.status
        const key = `${event.member}:${status}`
        const last = this.memberNews.get(key)
        this.memberNews.set(key, event.at)
        if (last !== undefined && event.at - last < SAME_NEWS_MS) return
        const member = this.nameOf(event.member)
        if (status === 'suspect') {
          this.suspicions++
          this.emit({ at: event.at, kind: 'suspect', text: `${agent} suspects ${member}` })
        } else if (status === 'dead') {
          this.deaths++
          this.emit({ at: event.at, kind: 'dead', text: `${agent} declares ${member} dead` })
        } else {
          this.emit({ at: event.at, kind: 'alive', text: `${member} refuted the suspicion (alive)` })
        }
        return
      }
      case 'steal':
        this.steals++
        this.emit({
          at: event.at,
          kind: 'steal',
          text: `${this.nameOf(event.to)} stole ${event.task} from ${this.nameOf(event.from)}`,
        })
        return
      case 'lockLost':
        this.emit({
          at: event.at,
          kind: 'lockLost',
          text: `${agent} lost ${event.key} (token ${event.token})`,
        })
        return
      case 'task':
        if (event.event !== 'completed') return
        this.tasksCompleted++
        if (this.history !== undefined) {
          const attempts = this.history.completions.get(event.task) ?? []
          attempts.push(event.attempt)
          this.history.completions.set(event.task, attempts)
        }
        return
    }
  }

  private emit(event: ClusterEvent): void {
    this.events.push(event)
    for (const listener of this.listeners) listener(event)
  }
}
