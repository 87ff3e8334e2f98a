/**
 * The fault schedule (a Jepsen-style nemesis). During the fault window it fires one fault every few ticks,
 * drawn from weights that are themselves random per seed ("swarm testing": a seed that rarely partitions
 * but often crashes leaders finds different bugs than an even mix). Faults overlap freely. Some are
 * triggered by what the cluster does rather than by the clock: crash a voter the moment it has granted a
 * vote, crash a leader right after it is elected. `stop` ends them all: heal, restart, calm the links.
 */

import type { KvInput } from '../../src/check/index.ts'
import type { Message, NodeId } from '../../src/raft/types.ts'
import type { Cluster, SimNode } from './cluster.ts'
import { CALM_LINKS } from './network.ts'
import type { Prng } from './prng.ts'
import { MS_PER_TICK } from './scheduler.ts'

/** Every kind of fault the schedule injects or provokes; the runner reports a count for each. */
export const FAULT_KINDS = [
  'crash',
  'crashLeader',
  'crashMany',
  'restart',
  'partition',
  'isolateLeader',
  'oneWay',
  'heal',
  'messageFaults',
  'lagging',
  'slowDisk',
  'removeVoter',
  'addVoter',
  'addNonVoter',
  'promote',
  'removeNonVoter',
  'transfer',
  'transferIsolate',
  'crashAfterVote',
  'crashNewLeader',
  'isolateNewLeader',
  'electionStorm',
  'splitVote',
  'figure8',
  'compaction',
  'snapshotInstall',
  'diskFail',
  'crashInWrite',
  'clockStep',
  'clockRate',
  'pause',
] as const

/**
 * The largest rate error of an agent's clocks (both run `1 ± MAX_DRIFT` times real time): 1 %, far above
 * what quartz does (~100 ppm) but what a VM's clock may do when its host is overloaded.
 */
export const MAX_DRIFT = 0.01

export type FaultKind = (typeof FAULT_KINDS)[number]

export type FaultCounts = Record<FaultKind, number>

export function emptyFaultCounts(): FaultCounts {
  return Object.fromEntries(FAULT_KINDS.map(kind => [kind, 0])) as FaultCounts
}

/** The faults the schedule picks from (the triggered and derived kinds come along with these). */
const ACTIONS = [
  'crash',
  'crashLeader',
  'crashMany',
  'partition',
  'isolateLeader',
  'oneWay',
  'messageFaults',
  'lagging',
  'slowDisk',
  'membership',
  'transfer',
  'transferIsolate',
  'armCrashAfterVote',
  'armCrashNewLeader',
  'armIsolateNewLeader',
  'electionStorm',
  'splitVote',
  'figure8',
  'diskFail',
  'crashInWrite',
  'clockStep',
  'clockRate',
  'pause',
] as const

type Action = (typeof ACTIONS)[number]

export interface NemesisSetup {
  cluster: Cluster
  prng: Prng
  /** Fault window, virtual ms. */
  startMs: number
  endMs: number
  /** Fewest voters a removal may leave. */
  minVoters: number
  trace: (line: string) => void
}

const ticks = (n: number) => n * MS_PER_TICK

/**
 * The Raft paper's figure 8, played with partitions: (a) the leader S1 is cut off and takes a write it cannot
 * replicate; (b) the others elect S2, which is cut off at once, its first entry (same index, later term)
 * stranded with it; (c) S1 comes back and is elected again; (d) the moment its commit index covers the
 * entries it took in (a) it is cut off, and S2 comes back. If S1 counted replicas of its old-term entry to
 * commit it, S2 now wins with the other entry and overwrites what S1 committed.
 */
interface Figure8 {
  step: 'awaitOther' | 'awaitOldLeader' | 'awaitCommit' | 'awaitAnyLeader'
  first: NodeId
  second: NodeId
  /** S1's last index once it took its writes: S2's first entry lies at or before it. */
  targetIndex: number
  /** Bumped at every step, so a step's time-out knows whether it still applies. */
  generation: number
}

export class Nemesis {
  readonly counts: FaultCounts = emptyFaultCounts()
  private readonly cluster: Cluster
  private readonly prng: Prng
  /** Its own stream, so that choosing a companion never shifts the schedule drawn from `prng`. */
  private readonly pairPrng: Prng
  private readonly setup: NemesisSetup
  private readonly weights: Record<Action, number>
  /** While set, client reads start at `reads` and writes at `writes` (read-from-nearest clients). */
  private steering: { reads: NodeId; writes: NodeId } | undefined
  private stopped = false
  private linkFaultGeneration = 0
  private crashAfterVote = 0
  private crashNewLeader = 0
  private isolateNewLeader = 0
  private stormPending = false
  /** When set, only this node is crashed by crash-after-vote. */
  private crashAfterVoteOnly: NodeId = ''
  /** The leader whose inbound links are cut when it sends TimeoutNow ('' = none). */
  private isolateInboundOnTimeoutNow: NodeId = ''
  private figure8: Figure8 | undefined
  private nemesisWrites = 0

  constructor(setup: NemesisSetup) {
    this.setup = setup
    this.cluster = setup.cluster
    this.prng = setup.prng
    this.pairPrng = setup.prng.stream('isolate-pair')
    // Swarm testing: each seed enables a random subset of actions with random weights (never none).
    const weights = {} as Record<Action, number>
    for (const action of ACTIONS) weights[action] = this.prng.chance(0.75) ? this.prng.between(1, 10) : 0
    if (ACTIONS.every(action => weights[action] === 0)) weights.crashLeader = 1
    this.weights = weights
    this.cluster.hooks.onSend = (node, message) => this.onSend(node, message)
    this.cluster.hooks.onLeader = node => this.onLeader(node)
    this.cluster.hooks.onCommit = node => this.onCommit(node)
    this.cluster.hooks.onCampaign = node => this.onCampaign(node)
  }

  /** Where the fault schedule steers a client operation now, if anywhere. */
  route(input: KvInput): NodeId | undefined {
    if (!this.steering) return undefined
    return input.op === 'get' ? this.steering.reads : this.steering.writes
  }

  start(): void {
    this.cluster.scheduler.at(this.setup.startMs, () => this.loop())
  }

  /** Ends the faults: heal every link, calm the network, restart every node. */
  stop(): void {
    this.stopped = true
    this.crashAfterVote = 0
    this.crashNewLeader = 0
    this.isolateNewLeader = 0
    this.stormPending = false
    this.isolateInboundOnTimeoutNow = ''
    this.steering = undefined
    this.figure8 = undefined
    const cluster = this.cluster
    cluster.network.heal()
    cluster.network.faults = { ...CALM_LINKS }
    cluster.network.slowNodes.clear()
    cluster.slowDisks.clear()
    for (const node of cluster.nodes) {
      node.disk.disarm()
      cluster.restart(node)
    }
    this.setup.trace('faults stop: network healed and calm, every node up')
  }

  private loop(): void {
    const scheduler = this.cluster.scheduler
    if (this.stopped || scheduler.now >= this.setup.endMs) return
    // A scripted scenario runs undisturbed.
    if (!this.figure8) this.fire(this.prng.weighted(this.weights))
    scheduler.after(this.prng.between(ticks(1), ticks(25)), () => this.loop())
  }

  private count(kind: FaultKind, detail: string): void {
    this.counts[kind]++
    this.setup.trace(`fault ${kind}: ${detail}`)
  }

  /** Runs `action` after `delayMs` unless the faults have stopped by then. */
  private later(delayMs: number, action: () => void): void {
    this.cluster.scheduler.after(delayMs, () => {
      if (!this.stopped) action()
    })
  }

  private fire(action: Action): void {
    const cluster = this.cluster
    const prng = this.prng
    const leader = cluster.leader()
    switch (action) {
      case 'crash': {
        const up = cluster.upNodes()
        if (up.length === 0) return
        const victim = prng.pick(up)
        this.count('crash', victim.id)
        this.crashFor(victim, this.downtime())
        return
      }
      case 'crashLeader': {
        if (!leader) return
        this.count('crashLeader', `${leader.id} (term ${leader.term})`)
        this.crashFor(leader, this.downtime())
        return
      }
      case 'crashMany': {
        const up = prng.shuffled(cluster.upNodes())
        const howMany = Math.min(
          up.length,
          prng.between(2, Math.max(2, cluster.founders.length - (prng.chance(0.7) ? 1 : 0))),
        )
        if (howMany < 2) return
        const victims = up.slice(0, howMany)
        this.count('crashMany', victims.map(node => node.id).join(', '))
        for (const victim of victims) this.crashFor(victim, this.downtime())
        return
      }
      case 'partition': {
        const ids = prng.shuffled(cluster.ids)
        const cut = prng.between(1, ids.length - 1)
        const side = ids.slice(0, cut)
        const other = ids.slice(cut)
        cluster.network.partition(side, other)
        this.count('partition', `[${side.join(' ')}] | [${other.join(' ')}]`)
        this.healAfter(prng.between(ticks(5), ticks(80)))
        return
      }
      case 'isolateLeader': {
        if (!leader) return
        // With five voters or more, half the time a follower goes with the old leader: it keeps following
        // it in the old term while the majority elects and writes, the case a read shortcut must not
        // mistake for a quorum.
        const followers = cluster.ids.filter(id => id !== leader.id)
        if (cluster.ids.length >= 5 && this.pairPrng.chance(0.5)) {
          const companion = this.pairPrng.pick(followers)
          cluster.network.partition(
            [leader.id, companion],
            followers.filter(id => id !== companion),
          )
          this.count('isolateLeader', `${leader.id} with ${companion}`)
        } else {
          this.isolate(leader.id)
          this.count('isolateLeader', leader.id)
        }
        this.healAfter(prng.between(ticks(10), ticks(80)))
        return
      }
      case 'oneWay': {
        const network = cluster.network
        const others = leader ? cluster.ids.filter(id => id !== leader.id) : []
        const mode = leader ? prng.pick(['fromLeader', 'toLeader', 'random'] as const) : 'random'
        if (mode === 'fromLeader' && leader) for (const id of others) network.cut(leader.id, id)
        else if (mode === 'toLeader' && leader) for (const id of others) network.cut(id, leader.id)
        else {
          for (let i = prng.between(1, 4); i > 0; i--)
            network.cut(prng.pick(cluster.ids), prng.pick(cluster.ids))
        }
        this.count('oneWay', mode)
        this.healAfter(prng.between(ticks(5), ticks(60)))
        return
      }
      case 'messageFaults': {
        const generation = ++this.linkFaultGeneration
        cluster.network.faults = {
          dropRate: prng.next() * 0.3,
          duplicateRate: prng.next() * 0.2,
          minDelayMs: 1,
          maxDelayMs: prng.between(5, 20),
          slowRate: prng.next() * 0.3,
          slowMaxDelayMs: prng.between(20, 150),
          lateRate: prng.chance(0.5) ? prng.next() * 0.03 : 0,
        }
        this.count('messageFaults', JSON.stringify(cluster.network.faults))
        this.later(prng.between(ticks(10), ticks(80)), () => {
          if (generation === this.linkFaultGeneration) cluster.network.faults = { ...CALM_LINKS }
        })
        return
      }
      case 'lagging': {
        const followers = cluster.upNodes().filter(node => node !== leader)
        if (followers.length === 0) return
        const follower = prng.pick(followers)
        if (leader && prng.chance(0.6)) cluster.network.cut(leader.id, follower.id)
        else cluster.network.slowNodes.set(follower.id, prng.between(20, 80))
        this.count('lagging', follower.id)
        // The leader compacts meanwhile, so catching up takes a snapshot.
        leader?.maybeCompact(true)
        this.later(prng.between(ticks(30), ticks(100)), () => {
          cluster.leader()?.maybeCompact(true)
          cluster.network.slowNodes.delete(follower.id)
          if (leader) this.healAfter(0)
        })
        return
      }
      case 'slowDisk': {
        const node = prng.pick(cluster.nodes)
        cluster.slowDisks.set(node.id, prng.between(5, 40))
        this.count('slowDisk', node.id)
        this.later(prng.between(ticks(20), ticks(100)), () => cluster.slowDisks.delete(node.id))
        return
      }
      case 'diskFail':
      case 'crashInWrite': {
        // The next write on the agent fails (I/O error, disk full: it must stop) or the process dies in it;
        // a prefix of it may have landed.
        const up = cluster.upNodes()
        if (up.length === 0) return
        const victim = prng.pick(up)
        const torn = prng.chance(0.5) ? prng.between(1, 3) : 0
        victim.disk.arm(action === 'diskFail' ? 'fail' : 'crash', torn)
        this.count(action, `${victim.id}, ${torn} entries of the write land`)
        return
      }
      case 'clockStep': {
        const node = prng.pick(cluster.nodes)
        // Up to past the session ttl (5 s): no session, lock or candidacy may end by an entry's timestamp, only
        // by the leader's guarded expiry on its monotonic clock (issue 15, lease-inline-expiry).
        const step = (prng.chance(0.5) ? 1 : -1) * prng.between(50, 8000)
        node.clock.stepWall(step)
        this.count('clockStep', `${node.id} wall clock ${step > 0 ? '+' : ''}${step} ms`)
        return
      }
      case 'clockRate': {
        const node = prng.pick(cluster.nodes)
        const rate = 1 + (prng.next() * 2 - 1) * MAX_DRIFT
        node.clock.setRate(rate)
        this.count('clockRate', `${node.id} clocks at ${rate.toFixed(4)}x`)
        return
      }
      case 'pause': {
        // A GC pause or a VM suspend: nothing of the agent runs, its memory is kept.
        const node = prng.pick(cluster.upNodes().length > 0 ? cluster.upNodes() : cluster.nodes)
        const ms = prng.chance(0.7) ? prng.between(5, 60) : prng.between(60, 400)
        node.clock.pauseFor(ms)
        this.count('pause', `${node.id} for ${ms} ms`)
        return
      }
      case 'membership':
        if (leader) this.changeMembership(leader)
        return
      case 'transfer': {
        if (!leader) return
        const target = this.transferTarget(leader)
        if (target && leader.transferLeadership(target)) this.count('transfer', `${leader.id} -> ${target}`)
        return
      }
      case 'transferIsolate': {
        // Hand leadership over and, the instant the old leader sends TimeoutNow, cut every link into it: the
        // target wins, but the old leader never hears of the new term and believes it leads until
        // check-quorum (if on) notices the silence, while the new leader takes writes: what a stale read needs.
        if (!leader) return
        const target = this.transferTarget(leader)
        if (!target) return
        this.isolateInboundOnTimeoutNow = leader.id
        if (!leader.transferLeadership(target)) {
          this.isolateInboundOnTimeoutNow = ''
          return
        }
        this.count('transferIsolate', `${leader.id} -> ${target}`)
        this.later(ticks(20), () => {
          if (this.isolateInboundOnTimeoutNow === leader.id) this.isolateInboundOnTimeoutNow = ''
        })
        return
      }
      case 'electionStorm':
        // The next time a voter starts campaigning, rivals start at the same instant (as when timers fire
        // together): split votes, and competing candidates of one term asking the same voters. A voter
        // crashes right after it votes, and slow links bring it a rival's request after it is back.
        this.stormPending = true
        if (leader && prng.chance(0.5)) this.crashFor(leader, prng.between(0, 10))
        this.later(ticks(40), () => {
          this.stormPending = false
        })
        return
      case 'splitVote': {
        // Two followers that cannot hear each other campaign at the same instant, right after the leader
        // restarted (so it has no leader and answers votes at once). It votes for one, crashes, comes back,
        // and the other's request (slow, or duplicated) reaches it again: it must still remember its vote.
        if (!leader) return
        const voters = leader.config()?.voters ?? []
        const followers = prng.shuffled(
          cluster.upNodes().filter(node => node !== leader && voters.includes(node.id)),
        )
        if (followers.length < 2) return
        const [first, second] = followers
        this.count('splitVote', `${first.id} and ${second.id} campaign; ${leader.id} restarts and votes`)
        cluster.network.partition([first.id], [second.id])
        this.crashFor(leader, prng.between(0, 2))
        this.later(prng.between(3, 6), () => {
          this.crashAfterVote = 1
          this.crashAfterVoteOnly = leader.id
          const generation = ++this.linkFaultGeneration
          cluster.network.faults = {
            ...CALM_LINKS,
            duplicateRate: 0.5,
            slowRate: 0.5,
            slowMaxDelayMs: prng.between(5, 30),
          }
          this.later(ticks(5), () => {
            if (generation === this.linkFaultGeneration) cluster.network.faults = { ...CALM_LINKS }
          })
          first.campaign()
          second.campaign()
          this.healAfter(prng.between(ticks(5), ticks(20)))
        })
        return
      }
      case 'armCrashAfterVote':
        // Provoke an election and crash voters right after they vote, with slow links so that competing
        // vote requests of the same term reach them after they are back.
        this.crashAfterVote = prng.between(1, 3)
        cluster.network.faults = {
          ...cluster.network.faults,
          slowRate: 0.3,
          slowMaxDelayMs: prng.between(10, 60),
        }
        if (leader && prng.chance(0.7)) this.crashFor(leader, prng.between(ticks(5), ticks(40)))
        this.setup.trace(`nemesis arms crash-after-vote x${this.crashAfterVote}`)
        return
      case 'figure8': {
        if (!leader) return
        this.count('figure8', `old leader ${leader.id} (term ${leader.term})`)
        this.isolate(leader.id)
        // Writes outside the clients' keys: they change nothing the history shows, only the log. They are
        // large (over most per-seed message limits), so S1 later replicates them one entry per append.
        for (let i = prng.between(1, 2); i > 0; i--) {
          const value = `${++this.nemesisWrites}:${'x'.repeat(1100)}`
          leader.nemesisWrite('nemesis', value)
        }
        this.figure8 = {
          step: 'awaitOther',
          first: leader.id,
          second: '',
          targetIndex: leader.lastIndex(),
          generation: 0,
        }
        this.figure8Timeout()
        return
      }
      case 'armIsolateNewLeader':
        this.isolateNewLeader = prng.between(1, 3)
        if (leader && prng.chance(0.5)) {
          this.isolate(leader.id)
          this.healAfter(prng.between(ticks(10), ticks(40)))
        }
        this.setup.trace(`nemesis arms isolate-new-leader x${this.isolateNewLeader}`)
        return
      case 'armCrashNewLeader':
        this.crashNewLeader = prng.between(1, 4)
        if (leader && prng.chance(0.5)) this.crashFor(leader, prng.between(1, ticks(30)))
        this.setup.trace(`nemesis arms crash-new-leader x${this.crashNewLeader}`)
        return
    }
  }

  private onSend(node: SimNode, message: Message): void {
    if (this.stopped) return
    if (message.type === 'timeoutNow' && message.from === this.isolateInboundOnTimeoutNow) {
      this.isolateInboundOnTimeoutNow = ''
      for (const id of this.cluster.ids) this.cluster.network.cut(id, node.id)
      this.setup.trace(`${node.id} sent TimeoutNow to ${message.to}: every link into ${node.id} cut`)
      const duration = this.prng.between(ticks(10), ticks(60))
      this.healAfter(duration)
      if (this.prng.chance(0.7)) {
        // Clients that read from the replica nearest to them (the old leader) and write through the new one.
        const steering = { reads: node.id, writes: message.to }
        this.steering = steering
        this.setup.trace(`clients read from ${node.id} and write through ${message.to}`)
        this.later(duration, () => {
          if (this.steering === steering) this.steering = undefined
        })
      }
    }
    if (this.crashAfterVote <= 0) return
    if (message.type !== 'voteResponse' || !message.granted) return
    if (this.crashAfterVoteOnly !== '' && node.id !== this.crashAfterVoteOnly) return
    this.crashAfterVoteOnly = ''
    this.crashAfterVote--
    this.count('crashAfterVote', `${node.id} right after voting for ${message.to} in term ${message.term}`)
    const incarnation = node.incarnation
    this.cluster.scheduler.after(0, () => {
      if (node.incarnation === incarnation) this.crashFor(node, this.prng.between(0, 4))
    })
  }

  /** Gives the current figure-8 step a while to happen, then abandons the scenario. */
  private figure8Timeout(): void {
    const script = this.figure8!
    const generation = ++script.generation
    this.later(ticks(80), () => {
      if (this.figure8 !== script || script.generation !== generation) return
      this.setup.trace(`figure 8 abandoned waiting for ${script.step}`)
      this.endFigure8()
    })
  }

  private endFigure8(): void {
    this.figure8 = undefined
    this.healAfter(this.prng.between(ticks(5), ticks(30)))
  }

  /** Cuts `id` off from everyone, healing every other cut first. */
  private isolateOnly(id: NodeId): void {
    this.cluster.network.heal()
    this.isolate(id)
  }

  private figure8OnLeader(script: Figure8, node: SimNode): void {
    if (script.step === 'awaitOther' && node.id !== script.first) {
      script.second = node.id
      script.step = 'awaitOldLeader'
      this.setup.trace(`figure 8: ${node.id} elected; cut it off and bring ${script.first} back`)
      this.isolateOnly(node.id)
      this.figure8Timeout()
    } else if (script.step === 'awaitOldLeader') {
      if (node.id !== script.first) {
        this.setup.trace(`figure 8: ${node.id} elected instead of ${script.first}`)
        this.endFigure8()
        return
      }
      script.step = 'awaitCommit'
      this.figure8Timeout()
    } else if (script.step === 'awaitAnyLeader') {
      this.setup.trace(`figure 8: ${node.id} elected after ${script.first} was cut off again`)
      this.endFigure8()
    }
  }

  private onCampaign(first: SimNode): void {
    if (!this.stormPending || this.stopped) return
    this.stormPending = false
    const cluster = this.cluster
    const prng = this.prng
    const voters = first.config()?.voters ?? cluster.founders
    const rivals = prng
      .shuffled(cluster.upNodes().filter(node => node !== first && voters.includes(node.id)))
      .slice(0, prng.between(1, Math.max(1, voters.length - 2)))
    if (rivals.length === 0) return
    this.count('electionStorm', `${first.id} with ${rivals.map(node => node.id).join(', ')}`)
    this.crashAfterVote = Math.max(this.crashAfterVote, prng.between(1, 2))
    const generation = ++this.linkFaultGeneration
    // Slow and duplicated messages: a request may come back to a voter after it restarted.
    cluster.network.faults = {
      ...CALM_LINKS,
      duplicateRate: 0.5,
      slowRate: 0.5,
      slowMaxDelayMs: prng.between(5, 30),
    }
    this.later(ticks(5), () => {
      if (generation === this.linkFaultGeneration) cluster.network.faults = { ...CALM_LINKS }
    })
    for (const rival of rivals) cluster.scheduler.after(prng.between(0, 2), () => rival.campaign())
  }

  private onCommit(node: SimNode): void {
    const script = this.figure8
    if (!script || this.stopped || script.step !== 'awaitCommit' || node.id !== script.first) return
    if (node.commit < script.targetIndex) return
    this.setup.trace(
      `figure 8: ${node.id} advanced its commit to ${node.commit}; cut it off, bring ${script.second} back`,
    )
    script.step = 'awaitAnyLeader'
    this.isolateOnly(node.id)
    this.figure8Timeout()
  }

  private onLeader(node: SimNode): void {
    if (this.stopped) return
    if (this.figure8) {
      this.figure8OnLeader(this.figure8, node)
      return
    }
    if (this.isolateNewLeader > 0) {
      this.isolateNewLeader--
      const term = node.term
      // Cut off right after its election: its first entries reach some followers, or none.
      this.later(this.prng.between(0, 12), () => {
        this.isolate(node.id)
        this.count('isolateNewLeader', `${node.id} (term ${term})`)
        this.healAfter(this.prng.between(ticks(5), ticks(40)))
      })
      return
    }
    if (this.crashNewLeader <= 0) return
    this.crashNewLeader--
    const incarnation = node.incarnation
    const term = node.term
    // Soon after its election: its no-op (and maybe a few proposals) reached some followers, or none.
    this.later(this.prng.between(0, 12), () => {
      if (node.incarnation !== incarnation || node.role !== 'leader') return
      this.count('crashNewLeader', `${node.id} (term ${term})`)
      this.crashFor(node, this.prng.between(1, ticks(30)))
    })
  }

  private downtime(): number {
    return this.prng.chance(0.3) ? this.prng.between(0, 15) : this.prng.between(ticks(2), ticks(60))
  }

  private crashFor(node: SimNode, downtimeMs: number): void {
    const cluster = this.cluster
    cluster.crash(node)
    const incarnation = node.incarnation
    cluster.scheduler.after(downtimeMs, () => {
      if (node.incarnation !== incarnation || node.up) return
      this.counts.restart++
      cluster.restart(node)
    })
  }

  private isolate(id: NodeId): void {
    const others = this.cluster.ids.filter(other => other !== id)
    this.cluster.network.partition([id], others)
  }

  private healAfter(delayMs: number): void {
    this.later(delayMs, () => {
      if (!this.cluster.network.hasCuts) return
      this.cluster.network.heal()
      this.count('heal', 'all links')
    })
  }

  private transferTarget(leader: SimNode): NodeId | undefined {
    const voters = leader.config()?.voters.filter(id => id !== leader.id) ?? []
    return voters.length > 0 ? this.prng.pick(voters) : undefined
  }

  /**
   * Whether a learner may become a voter: it is up and holds part of the log on disk (so it knows the
   * configuration and can vote). The agent promotes only learners that caught up; one that lost its disk
   * before its first write would otherwise make a voter set that can elect no one (seed 1002).
   */
  private holdsLog(id: string): boolean {
    const learner = this.cluster.node(id)
    return learner.up && learner.disk.durable.lastIndex > 0
  }

  /**
   * Whether `id` may join a sole voter as the second voter: it holds the leader's log up to the leader's
   * commit index (as the agent promotes only a learner whose match reached the commit). Every commit of a
   * two-voter set needs it: one far behind must first install a snapshot, which with the smallest chunks
   * drawn takes longer than the liveness bound (seed 257: 83 KB in 64-byte chunks, 67 ticks of no commits).
   */
  private caughtUp(leader: SimNode, id: string): boolean {
    if (!this.holdsLog(id)) return false
    const term = leader.log.termAt(leader.commit)
    return term !== undefined && this.cluster.node(id).disk.durable.termAt(leader.commit) === term
  }

  private changeMembership(leader: SimNode): void {
    const config = leader.config()
    if (!config) return
    const candidates: { kind: FaultKind; change: Parameters<SimNode['changeConfig']>[0] }[] = []
    for (const id of this.cluster.ids) {
      if (config.voters.includes(id)) {
        if (config.voters.length > this.setup.minVoters)
          candidates.push({ kind: 'removeVoter', change: { type: 'removeVoter', node: id } })
      } else if (config.nonVoters.includes(id)) {
        // As the agent's voter management does: only a learner that has caught up becomes a voter (one that
        // lost its disk before its first write could otherwise leave a voter set that can elect no one).
        if (config.voters.length > 1 ? this.holdsLog(id) : this.caughtUp(leader, id))
          candidates.push({ kind: 'promote', change: { type: 'promote', node: id } })
        candidates.push({ kind: 'removeNonVoter', change: { type: 'removeNonVoter', node: id } })
      } else {
        candidates.push({ kind: 'addNonVoter', change: { type: 'addNonVoter', node: id } })
        // Straight in as a voter only beside others, or caught up: a sole voter joined by a node that never
        // wrote its log needs it for every quorum, and it cannot vote until it catches up, which a leader lost
        // meanwhile never lets it (shrink-to-one seeds 186, 257 of a 600-seed sweep); one far behind stalls
        // every commit until it installs a snapshot (`caughtUp`).
        if (config.voters.length > 1 || this.caughtUp(leader, id))
          candidates.push({ kind: 'addVoter', change: { type: 'addVoter', node: id } })
      }
    }
    if (candidates.length === 0) return
    // Every kind of change as often as the others, whatever the number of nodes each applies to.
    const kinds = [...new Set(candidates.map(candidate => candidate.kind))]
    const chosenKind = this.prng.pick(kinds)
    const { kind, change } = this.prng.pick(candidates.filter(candidate => candidate.kind === chosenKind))
    if (!leader.changeConfig(change)) return
    this.count(kind, `${change.node} via ${leader.id}`)
    if (kind === 'addNonVoter') {
      // The usual way in: a learner catches up, then becomes a voter (or, now and then, is let go).
      const followUp = this.prng.chance(0.5) ? 'promote' : 'removeNonVoter'
      // Tried again a few times: the leader may be gone or the learner not caught up yet.
      const attempt = (left: number): void => {
        const current = this.cluster.leader()
        if (!current?.config()?.nonVoters.includes(change.node)) {
          if (current === undefined && left > 0) this.later(ticks(10), () => attempt(left - 1))
          return
        }
        const voters = current.config()?.voters.length ?? 0
        const ready = voters > 1 ? this.holdsLog(change.node) : this.caughtUp(current, change.node)
        if (followUp === 'promote' && !ready) {
          if (left > 0) this.later(ticks(10), () => attempt(left - 1))
          return
        }
        if (current.changeConfig({ type: followUp, node: change.node })) {
          this.count(followUp, `${change.node} via ${current.id}`)
        }
      }
      this.later(this.prng.between(ticks(3), ticks(40)), () => attempt(4))
    }
  }
}
