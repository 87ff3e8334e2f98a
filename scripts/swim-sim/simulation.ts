/**
 * A deterministic simulation of many SWIM cores: virtual time, a seeded PRNG, direct messages with loss and
 * delay, gossip as best-effort fanout to every subscriber (per-delivery loss and delay, as a gossipsub mesh
 * behaves for our purpose), and members that crash, lag, pause or leave. Replays exactly for a seed.
 */

import { SWIM_FAST_CONFIG, SWIM_LAN_CONFIG, suspicionTimeout } from '../../src/swim/config.ts'
import { Swim } from '../../src/swim/swim.ts'
import type { GossipMessage, MemberEvent, SwimConfig, SwimMessage } from '../../src/swim/types.ts'
import { Prng } from '../sim/prng.ts'
import { resolveSimOptions, type SwimSimOptions } from './options.ts'
import {
  type CrashReport,
  type FalsePositive,
  type LeaveReport,
  maximum,
  median,
  memberlistBound,
  type SwimSimReport,
} from './report.ts'
import { Timeline } from './timeline.ts'

type MemberState = 'pending' | 'running' | 'crashed' | 'stopped'

interface SimMember {
  index: number
  id: string
  core: Swim | undefined
  state: MemberState
  crashedAt: number | undefined
  leftAt: number | undefined
  /** The time of the tick event that counts (older ones are stale); +∞ when none is scheduled. */
  tickAt: number
  lag: boolean
  /** Lag mode: when the last message left the inbox (FIFO). */
  inboxFreeAt: number
  /** Pause mode: paused until then; messages wait in `pausedInbox`. */
  pausedUntil: number
  pausedInbox: { from: string; message: SwimMessage }[]
}

type SimEvent =
  | { kind: 'tick'; member: number }
  | { kind: 'deliver'; member: number; from: string; message: SwimMessage }
  | { kind: 'process'; member: number; from: string; message: SwimMessage }
  | { kind: 'gossip'; from: string; message: GossipMessage; recipients: number[] }
  | { kind: 'start' | 'crash' | 'leave' | 'stop' | 'pauseStart' | 'pauseEnd'; member: number }

/** How long a departing member keeps running to publish its `left`. */
const LEAVE_LINGER_MS = 5000

const MAX_FALSE_POSITIVE_SAMPLES = 20

/** Runs one simulation; the report is a pure function of the options. */
export function runSwimSimulation(overrides: Partial<SwimSimOptions> = {}): SwimSimReport {
  const options = resolveSimOptions(overrides)
  const config: SwimConfig = {
    ...(options.preset === 'fast' ? SWIM_FAST_CONFIG : SWIM_LAN_CONFIG),
    ...options.config,
  }
  // Streams named at the top level (not `root/...` as `stream()` names them): the draws every recorded SWIM
  // seed was run with.
  const stream = (name: string): Prng => new Prng(options.seed, name)
  const network = stream('network')
  const plan = stream('plan')
  const timeline = new Timeline<SimEvent>()
  const n = options.members

  const members: SimMember[] = []
  const indexOf = new Map<string, number>()
  for (let index = 0; index < n; index++) {
    const id = `m${index}`
    indexOf.set(id, index)
    members.push({
      index,
      id,
      core: undefined,
      state: 'pending',
      crashedAt: undefined,
      leftAt: undefined,
      tickAt: Number.POSITIVE_INFINITY,
      lag: false,
      inboxFreeAt: 0,
      pausedUntil: 0,
      pausedInbox: [],
    })
  }

  // ---------- the plan: joins, then a measured window with crashes, leaves and slow members ----------
  const measuredFrom = (n - 1) * options.joinSpacingMs + options.settleMs
  const measuredMs = options.periods * config.probeInterval
  const end = measuredFrom + measuredMs
  for (const member of members)
    timeline.at(member.index * options.joinSpacingMs, { kind: 'start', member: member.index })

  const others = members.slice(1).map(member => member.index)
  const chosen = plan.sample(others, options.crash + options.slow + options.leave)
  const crashed = chosen.slice(0, options.crash)
  const slow = chosen.slice(options.crash, options.crash + options.slow)
  const leaving = chosen.slice(options.crash + options.slow)
  // Faults land early enough that detection (at worst the unconfirmed suspicion timeout) ends in the window.
  const maxSuspicion = suspicionTimeout(config, n) * config.suspicionMaxTimeoutMult
  const tail = Math.min(Math.floor(measuredMs / 2), maxSuspicion + 10 * config.probeInterval)
  const faultTime = () => measuredFrom + Math.floor(plan.next() * Math.max(1, measuredMs - tail))
  for (const index of crashed) timeline.at(faultTime(), { kind: 'crash', member: index })
  for (const index of leaving) timeline.at(faultTime(), { kind: 'leave', member: index })
  for (const index of slow) {
    if (options.slowMode === 'lag') members[index].lag = true
    else
      timeline.at(measuredFrom + Math.floor(plan.next() * options.pauseEveryMs), {
        kind: 'pauseStart',
        member: index,
      })
  }

  // ---------- measurements ----------
  let falsePositives = 0
  const falsePositiveSamples: FalsePositive[] = []
  const falseSuspicions = new Set<string>()
  const leftMarkedDead = new Map<number, number>()
  const leftMarkedLeft = new Map<number, Set<number>>()
  const detections = new Map<number, Map<number, number>>()
  for (const index of crashed) detections.set(index, new Map())
  let directSent = 0
  let gossipPublished = 0
  let gossipDelivered = 0
  let maxLocalHealth = 0
  const measuring = (now: number) => now >= measuredFrom && now < end

  const observe = (observer: SimMember, events: MemberEvent[]) => {
    for (const event of events) {
      const subjectIndex = indexOf.get(event.member.id)
      if (subjectIndex === undefined || subjectIndex === observer.index) continue
      const subject = members[subjectIndex]
      if (event.type === 'dead') {
        if (subject.crashedAt !== undefined && event.at >= subject.crashedAt) {
          const seen = detections.get(subjectIndex)!
          if (!seen.has(observer.index)) seen.set(observer.index, event.at)
        } else if (subject.leftAt !== undefined && event.at >= subject.leftAt) {
          leftMarkedDead.set(subjectIndex, (leftMarkedDead.get(subjectIndex) ?? 0) + 1)
        } else {
          falsePositives++
          if (falsePositiveSamples.length < MAX_FALSE_POSITIVE_SAMPLES) {
            falsePositiveSamples.push({ observer: observer.id, subject: subject.id, at: event.at })
          }
        }
      } else if (event.type === 'suspect') {
        if (subject.crashedAt === undefined && (subject.leftAt === undefined || event.at < subject.leftAt)) {
          falseSuspicions.add(`${subject.id}@${event.member.incarnation}`)
        }
      } else if (event.type === 'left' && subject.leftAt !== undefined) {
        const set = leftMarkedLeft.get(subjectIndex) ?? new Set<number>()
        leftMarkedLeft.set(subjectIndex, set)
        set.add(observer.index)
      }
    }
  }

  // ---------- the network ----------
  const directDelay = () => network.between(options.directDelayMs[0], options.directDelayMs[1])
  const gossipDelay = () => network.between(options.gossipDelayMs[0], options.gossipDelayMs[1])

  /** Delivers to every running subscriber but the publisher, one event per distinct delay. */
  const publish = (from: SimMember, message: GossipMessage, now: number) => {
    const groups: (number[] | undefined)[] = []
    for (const member of members) {
      if (member === from || member.state !== 'running') continue
      if (measuring(now)) gossipDelivered++
      if (network.chance(options.loss)) continue
      const delay = gossipDelay()
      const group = groups[delay]
      if (group === undefined) groups[delay] = [member.index]
      else group.push(member.index)
    }
    for (let delay = 0; delay < groups.length; delay++) {
      const recipients = groups[delay]
      if (recipients !== undefined)
        timeline.schedule(now + delay, { kind: 'gossip', from: from.id, message, recipients })
    }
  }

  /** Hands the core's effects to the network and the measurements, and books its next tick. */
  const afterCall = (member: SimMember, now: number) => {
    const core = member.core!
    if (core.hasReady()) {
      const ready = core.drain()
      for (const send of ready.sends) {
        if (measuring(now)) directSent++
        const to = indexOf.get(send.to)
        if (to === undefined || network.chance(options.loss)) continue
        timeline.schedule(now + directDelay(), {
          kind: 'deliver',
          member: to,
          from: member.id,
          message: send.message,
        })
      }
      if (ready.broadcasts.length > 0) {
        if (measuring(now)) gossipPublished++
        publish(member, { type: 'gossip', updates: ready.broadcasts }, now)
      }
      if (ready.events.length > 0) observe(member, ready.events)
    }
    const due = core.nextTickAt()
    if (due === Number.POSITIVE_INFINITY) return
    const at = Math.max(Math.ceil(due), now + 1)
    if (at < member.tickAt) {
      member.tickAt = at
      timeline.schedule(at, { kind: 'tick', member: member.index })
    }
  }

  const process = (member: SimMember, from: string, message: SwimMessage, now: number) => {
    if (member.state !== 'running') return
    member.core!.receive(from, message, now)
    afterCall(member, now)
  }

  const arrive = (member: SimMember, from: string, message: SwimMessage, now: number) => {
    if (member.state !== 'running') return
    if (now < member.pausedUntil) {
      member.pausedInbox.push({ from, message })
      return
    }
    if (member.lag) {
      const at = Math.max(now + network.between(0, options.slowMs), member.inboxFreeAt)
      member.inboxFreeAt = at
      if (at > now) {
        timeline.schedule(at, { kind: 'process', member: member.index, from, message })
        return
      }
    }
    process(member, from, message, now)
  }

  const tick = (member: SimMember, now: number) => {
    member.core!.tick(now)
    const health = member.core!.localHealth()
    if (health > maxLocalHealth) maxLocalHealth = health
    afterCall(member, now)
  }

  const handle = (event: SimEvent, now: number) => {
    switch (event.kind) {
      case 'tick': {
        const member = members[event.member]
        if (member.tickAt !== now) return
        member.tickAt = Number.POSITIVE_INFINITY
        if (member.state !== 'running' || now < member.pausedUntil) return
        tick(member, now)
        return
      }
      case 'deliver':
        arrive(members[event.member], event.from, event.message, now)
        return
      case 'process':
        process(members[event.member], event.from, event.message, now)
        return
      case 'gossip':
        for (const index of event.recipients) arrive(members[index], event.from, event.message, now)
        return
      case 'start': {
        const member = members[event.member]
        member.state = 'running'
        member.core = new Swim({
          self: {
            id: member.id,
            name: member.id,
            addrs: [`/memory/${member.id}`],
            capabilities: [],
            labels: {},
            role: 'nonvoter',
            load: 0,
          },
          incarnation: 1,
          now,
          random: stream(`core/${member.id}`).asRandom(),
          config,
        })
        if (member.index > 0) member.core.join(['m0'], now)
        afterCall(member, now)
        return
      }
      case 'crash': {
        const member = members[event.member]
        member.state = 'crashed'
        member.crashedAt = now
        return
      }
      case 'leave': {
        const member = members[event.member]
        if (member.state !== 'running') return
        member.leftAt = now
        member.core!.leave(now)
        afterCall(member, now)
        timeline.schedule(now + LEAVE_LINGER_MS, { kind: 'stop', member: member.index })
        return
      }
      case 'stop':
        members[event.member].state = 'stopped'
        return
      case 'pauseStart': {
        const member = members[event.member]
        if (member.state !== 'running') return
        member.pausedUntil = now + options.slowMs
        timeline.at(member.pausedUntil, { kind: 'pauseEnd', member: member.index })
        return
      }
      case 'pauseEnd': {
        const member = members[event.member]
        member.pausedUntil = 0
        if (member.state !== 'running') return
        // A process waking from a pause runs its due timers before it reads its sockets (as Node does).
        tick(member, now)
        const inbox = member.pausedInbox
        member.pausedInbox = []
        for (const { from, message } of inbox) process(member, from, message, now)
        timeline.at(now + options.pauseEveryMs - options.slowMs, { kind: 'pauseStart', member: member.index })
        return
      }
    }
  }

  timeline.run(end, handle)

  // ---------- the report ----------
  const liveAtEnd = members.filter(member => member.state === 'running' && member.leftAt === undefined)
  const crashes: CrashReport[] = crashed.map(index => {
    const member = members[index]
    const seen = detections.get(index)!
    const times: number[] = []
    let undetectedBy = 0
    for (const observer of liveAtEnd) {
      const at = seen.get(observer.index)
      if (at === undefined) undetectedBy++
      else times.push(at - member.crashedAt!)
    }
    return {
      member: member.id,
      crashAt: member.crashedAt!,
      firstDetectionMs: times.length === 0 ? null : Math.min(...times),
      lastDetectionMs: undetectedBy > 0 || times.length === 0 ? null : Math.max(...times),
      undetectedBy,
    }
  })
  const leaves: LeaveReport[] = leaving.map(index => ({
    member: members[index].id,
    leftAt: members[index].leftAt ?? -1,
    markedLeftBy: [...(leftMarkedLeft.get(index) ?? [])].filter(observer =>
      liveAtEnd.includes(members[observer]),
    ).length,
    markedDeadBy: leftMarkedDead.get(index) ?? 0,
  }))
  let suspect = 0
  let deadOrMissing = 0
  for (const observer of liveAtEnd) {
    for (const subject of liveAtEnd) {
      if (subject === observer) continue
      const status = observer.core!.member(subject.id)?.status
      if (status === 'suspect') suspect++
      else if (status !== 'alive') deadOrMissing++
    }
  }
  const seconds = measuredMs / 1000
  const perMemberPerSecond = (count: number) => Math.round((count / n / seconds) * 1000) / 1000
  const firsts = crashes.flatMap(crash => (crash.firstDetectionMs === null ? [] : [crash.firstDetectionMs]))
  const lasts = crashes.flatMap(crash => (crash.lastDetectionMs === null ? [] : [crash.lastDetectionMs]))
  return {
    options,
    config,
    simulatedMs: end,
    measuredFromMs: measuredFrom,
    measuredMs,
    falsePositives,
    falsePositiveSamples,
    falseSuspicions: falseSuspicions.size,
    crashes,
    detection: {
      firstMedianMs: median(firsts),
      lastMedianMs: median(lasts),
      lastMaxMs: maximum(lasts),
      memberlistBoundMs: memberlistBound(n),
    },
    leaves,
    messages: {
      directPerMemberPerSecond: perMemberPerSecond(directSent),
      gossipPublishesPerMemberPerSecond: perMemberPerSecond(gossipPublished),
      gossipDeliveriesPerMemberPerSecond: perMemberPerSecond(gossipDelivered),
    },
    finalView: { suspect, deadOrMissing },
    maxLocalHealth,
  }
}
