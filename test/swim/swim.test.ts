import { describe, expect, it } from 'vitest'
import { resolveConfig, SWIM_FAST_CONFIG, SWIM_LAN_CONFIG, suspicionTimeout } from '../../src/swim/config.ts'
import { Swim } from '../../src/swim/swim.ts'
import type { DirectMessage, MemberRecord, SwimConfig, SwimReady, Update } from '../../src/swim/types.ts'
import { localRecord, seededRandom, TestCluster } from './harness.ts'

const record = (id: string, incarnation = 1): MemberRecord => ({ ...localRecord(id), incarnation })
const alive = (id: string, incarnation = 1): Update => ({ type: 'alive', member: record(id, incarnation) })

/**
 * Core 'a' that already knows `others` as alive, its self-announcement published. Each update is published
 * once (unless `config` says otherwise), so gossip deadlines do not clutter the probe timelines under test.
 */
function coreKnowing(others: string[], config: Partial<SwimConfig> = {}): Swim {
  const core = new Swim({
    self: localRecord('a'),
    incarnation: 1,
    now: 0,
    random: seededRandom(7),
    config: { retransmitMult: 1, ...config },
  })
  core.tick(0)
  core.receive('z', { type: 'gossip', updates: others.map(id => alive(id)) }, 0)
  core.drain()
  return core
}

/**
 * Ticks at each deadline until `until`, collecting everything drained. Members for which `acks` holds answer
 * every ping at once; the others never answer.
 */
function runCore(core: Swim, until: number, acks: (id: string) => boolean = () => false): SwimReady {
  const all: SwimReady = { sends: [], broadcasts: [], events: [] }
  const collect = () => {
    const ready = core.drain()
    all.sends.push(...ready.sends)
    all.broadcasts.push(...ready.broadcasts)
    all.events.push(...ready.events)
    return ready
  }
  for (let due = core.nextTickAt(); due <= until; due = core.nextTickAt()) {
    core.tick(due)
    for (const send of collect().sends) {
      if (send.message.type === 'ping' && acks(send.to)) {
        core.receive(send.to, { type: 'ack', seq: send.message.seq }, due)
        collect()
      }
    }
  }
  return all
}

const everyone = () => true

/** Ticks until the core sends its next probe ping; returns it and when. */
function nextProbe(core: Swim): { at: number; to: string; seq: number } {
  for (let i = 0; i < 100; i++) {
    const at = core.nextTickAt()
    core.tick(at)
    const ping = core.drain().sends.find(send => send.message.type === 'ping')
    if (ping !== undefined && ping.message.type === 'ping') return { at, to: ping.to, seq: ping.message.seq }
  }
  throw new Error('no probe')
}

function tickAt(core: Swim, now: number): SwimReady {
  core.tick(now)
  return core.drain()
}

const types = (ready: SwimReady) => ready.sends.map(send => send.message.type)

describe('configuration', () => {
  it('computes memberlist-like suspicion timeouts: mult × max(1, log10 n) × probe interval', () => {
    expect(suspicionTimeout(SWIM_LAN_CONFIG, 3)).toBe(4000)
    expect(suspicionTimeout(SWIM_LAN_CONFIG, 25)).toBe(5591)
    expect(suspicionTimeout(SWIM_LAN_CONFIG, 100)).toBe(8000)
    expect(suspicionTimeout(SWIM_FAST_CONFIG, 100)).toBe(4000)
    expect(suspicionTimeout({ ...SWIM_LAN_CONFIG, probeInterval: 100 }, 2)).toBe(1000)
  })

  it('rejects nonsense', () => {
    expect(() => resolveConfig({ probeInterval: 0 })).toThrow(RangeError)
    expect(() => resolveConfig({ probeTimeout: 1000 })).toThrow(RangeError)
    expect(() => resolveConfig({ indirectChecks: -1 })).toThrow(RangeError)
    expect(() => resolveConfig({ bogus: 1 } as Partial<SwimConfig>)).toThrow(RangeError)
    expect(resolveConfig({ probeInterval: 2000 }).probeTimeout).toBe(500)
  })

  it('rejects an invalid local record', () => {
    const make = (load: number) =>
      new Swim({ self: { ...localRecord('a'), load }, incarnation: 1, now: 0, random: Math.random })
    expect(() => make(2)).toThrow(RangeError)
    expect(() => make(0.5)).not.toThrow()
  })
})

describe('probing', () => {
  it('probes every member exactly once per round, in a shuffled round-robin', () => {
    const cluster = new TestCluster()
    cluster.add('m0')
    for (let i = 1; i < 6; i++) cluster.add(`m${i}`, ['m0'])
    cluster.run(60_000)
    const targets = cluster.sends('ping', 'm0').map(sent => sent.to)
    expect(targets.length).toBeGreaterThanOrEqual(55)
    const round = 5
    const aligned = [0, 1, 2, 3, 4].some(offset => {
      for (let start = offset; start + round <= targets.length; start += round) {
        if (new Set(targets.slice(start, start + round)).size !== round) return false
      }
      return true
    })
    expect(aligned).toBe(true)
    // Shuffled: the rounds are not all in the same order.
    const orders = new Set<string>()
    for (let start = 10; start + round <= targets.length; start += round) {
      orders.add(targets.slice(start, start + round).join())
    }
    expect(orders.size).toBeGreaterThan(1)
  })

  it('keeps a member alive that acks within the probe timeout', () => {
    const core = coreKnowing(['b', 'c', 'd'])
    const probe = nextProbe(core)
    core.receive(probe.to, { type: 'ack', seq: probe.seq }, probe.at + 10)
    const ready = runCore(core, probe.at + 999)
    expect(types(ready)).not.toContain('pingReq')
    expect(ready.events).toEqual([])
    expect(core.member(probe.to)?.status).toBe('alive')
    expect(core.member(probe.to)?.lastSeen).toBe(probe.at + 10)
  })

  it('without an ack asks k others at the probe timeout, then suspects at the end of the period', () => {
    const core = coreKnowing(['b', 'c', 'd', 'e'])
    const probe = nextProbe(core)
    expect(core.nextTickAt()).toBe(probe.at + 500)
    expect(tickAt(core, probe.at + 499).sends).toEqual([])
    const atTimeout = tickAt(core, probe.at + 500)
    const requests = atTimeout.sends.filter(send => send.message.type === 'pingReq')
    expect(requests).toHaveLength(3)
    expect(new Set(requests.map(send => send.to)).size).toBe(3)
    expect(requests.map(send => send.to)).not.toContain(probe.to)
    expect(requests.map(send => send.to)).not.toContain('a')
    for (const request of requests)
      expect(request.message).toEqual({ type: 'pingReq', seq: probe.seq, target: probe.to })
    // The fallback direct ping.
    expect(atTimeout.sends.filter(send => send.message.type === 'ping').map(send => send.to)).toEqual([
      probe.to,
    ])
    expect(tickAt(core, probe.at + 999).events).toEqual([])
    const atDeadline = tickAt(core, probe.at + 1000)
    expect(atDeadline.events.map(event => [event.type, event.member.id])).toEqual([['suspect', probe.to]])
    expect(atDeadline.broadcasts).toContainEqual({ type: 'suspect', id: probe.to, incarnation: 1, from: 'a' })
    expect(core.member(probe.to)?.status).toBe('suspect')
  })

  it('counts an ack relayed by an intermediary', () => {
    const core = coreKnowing(['b', 'c', 'd', 'e'])
    const probe = nextProbe(core)
    const requests = tickAt(core, probe.at + 500).sends.filter(send => send.message.type === 'pingReq')
    core.receive(requests[0].to, { type: 'ack', seq: probe.seq }, probe.at + 700)
    const ready = runCore(core, probe.at + 1000)
    expect(ready.events).toEqual([])
    expect(core.member(probe.to)?.status).toBe('alive')
  })

  it('as an intermediary, pings the target and forwards its ack, or sends a nack after 80% of the timeout', () => {
    const core = coreKnowing(['b', 'c'])
    core.receive('b', { type: 'pingReq', seq: 41, target: 'c' }, 100)
    const ping = core.drain().sends
    expect(ping).toHaveLength(1)
    expect(ping[0].to).toBe('c')
    const relaySeq = (ping[0].message as DirectMessage & { seq: number }).seq
    core.receive('c', { type: 'ack', seq: relaySeq }, 103)
    expect(core.drain().sends).toEqual([{ to: 'b', message: { type: 'ack', seq: 41 } }])

    runCore(core, 1000, everyone)
    core.receive('b', { type: 'pingReq', seq: 42, target: 'c' }, 1000)
    core.drain()
    expect(runCore(core, 1399, everyone).sends.filter(send => send.message.type === 'nack')).toEqual([])
    expect(tickAt(core, 1400).sends.filter(send => send.message.type === 'nack')).toEqual([
      { to: 'b', message: { type: 'nack', seq: 42 } },
    ])
  })

  it('answers a ping with an ack', () => {
    const core = coreKnowing(['b'])
    core.receive('b', { type: 'ping', seq: 9, target: 'a' }, 5)
    expect(core.drain().sends).toEqual([{ to: 'b', message: { type: 'ack', seq: 9 } }])
    // A ping meant for someone else is not answered.
    core.receive('b', { type: 'ping', seq: 10, target: 'q' }, 6)
    expect(core.drain().sends).toEqual([])
  })
})

describe('suspicion', () => {
  // a + b..e: n = 5, k = 2, min = 4 s, max = 24 s.
  const suspectAt = (core: Swim, at: number) => {
    runCore(core, at, everyone)
    core.receive(
      'b',
      { type: 'gossip', updates: [{ type: 'suspect', id: 'e', incarnation: 1, from: 'b' }] },
      at,
    )
    expect(core.drain().events.map(event => event.type)).toEqual(['suspect'])
  }
  const deadEvents = (ready: SwimReady) =>
    ready.events.filter(event => event.type === 'dead' && event.member.id === 'e')
  // The core keeps probing meanwhile; every probe is answered, so its own probes never confirm.

  it('declares an unrefuted suspect dead after the maximum timeout when nobody confirms', () => {
    const core = coreKnowing(['b', 'c', 'd', 'e'])
    suspectAt(core, 1000)
    expect(deadEvents(runCore(core, 1000 + 24_000 - 1, everyone))).toEqual([])
    const ready = runCore(core, 1000 + 24_000, everyone)
    expect(deadEvents(ready)).toHaveLength(1)
    expect(core.member('e')?.status).toBe('dead')
    // Heard on the topic only: every member heard it and runs the same timer, so this one publishes nothing
    // (each holder publishing was a gossipsub flood per member for every crash).
    expect(ready.broadcasts.filter(update => update.type === 'dead')).toEqual([])
  })

  it('publishes the death of a member it suspected itself, by its own failed probe', () => {
    const core = coreKnowing(['b', 'c', 'd', 'e'])
    const ready = runCore(core, 60_000, id => id !== 'e')
    expect(deadEvents(ready)).toHaveLength(1)
    expect(ready.broadcasts).toContainEqual({ type: 'suspect', id: 'e', incarnation: 1, from: 'a' })
    expect(ready.broadcasts).toContainEqual({ type: 'dead', id: 'e', incarnation: 1, from: 'a' })
  })

  it('shortens the timeout with each independent confirmation, down to the minimum', () => {
    const core = coreKnowing(['b', 'c', 'd', 'e'])
    suspectAt(core, 1000)
    const confirm = (from: string, at: number) => {
      runCore(core, at, everyone)
      core.receive(
        from,
        { type: 'gossip', updates: [{ type: 'suspect', id: 'e', incarnation: 1, from }] },
        at,
      )
    }
    confirm('b', 1500) // the first accuser again: not a confirmation
    confirm('c', 2000)
    const afterOne = 1000 + Math.floor(24_000 - (Math.log(2) / Math.log(3)) * 20_000)
    expect(core.nextTickAt()).toBeLessThanOrEqual(afterOne)
    expect(deadEvents(runCore(core, afterOne - 1, everyone))).toEqual([])
    confirm('d', afterOne - 1)
    // Two confirmations: the minimum (4 s) has long passed, so it fires at once.
    expect(core.nextTickAt()).toBe(1000 + 4000)
    expect(deadEvents(tickAt(core, afterOne - 1))).toHaveLength(1)
  })

  it('uses the minimum from the start when too few members could confirm', () => {
    const core = coreKnowing(['b', 'e'])
    suspectAt(core, 1000)
    expect(deadEvents(runCore(core, 4999, everyone))).toEqual([])
    expect(deadEvents(runCore(core, 5000, everyone))).toHaveLength(1)
  })

  it('lets the suspect refute at once with a higher incarnation, which clears the suspicion everywhere', () => {
    const cluster = new TestCluster()
    cluster.add('m0')
    for (let i = 1; i < 5; i++) cluster.add(`m${i}`, ['m0'])
    cluster.run(5000)
    // m3 cannot be reached directly until someone suspects it.
    cluster.drop = (_from, to, message) => to === 'm3' && message.type !== 'gossip'
    for (let i = 0; i < 30 && cluster.eventsAbout('m3', 'suspect').length === 0; i++) cluster.run(1000)
    expect(cluster.eventsAbout('m3', 'suspect').length).toBeGreaterThan(0)
    cluster.drop = () => false
    cluster.run(60_000)
    expect(cluster.eventsAbout('m3', 'dead')).toEqual([])
    expect(cluster.eventsAbout('m3', 'alive').length).toBeGreaterThan(0)
    const incarnation = cluster.core('m3').incarnation()
    expect(incarnation).toBeGreaterThanOrEqual(2)
    for (const observer of ['m0', 'm1', 'm2', 'm4']) {
      expect(cluster.statusOf(observer, 'm3')).toBe('alive')
      expect(cluster.core(observer).member('m3')?.incarnation).toBe(incarnation)
    }
  })

  it('refutes when a ping says it is suspected (it may have missed the gossip)', () => {
    const core = coreKnowing(['b'])
    core.receive('b', { type: 'ping', seq: 3, target: 'a', suspectIncarnation: 1 }, 10)
    expect(core.drain().sends).toEqual([{ to: 'b', message: { type: 'ack', seq: 3 } }])
    expect(core.incarnation()).toBe(2)
    // Published at the next gossip slot (at most gossipInterval later).
    expect(core.nextTickAt()).toBeLessThanOrEqual(200)
    expect(tickAt(core, 200).broadcasts).toEqual([{ type: 'alive', member: record('a', 2) }])
    // A suspicion of an older incarnation is already refuted.
    core.receive('b', { type: 'ping', seq: 4, target: 'a', suspectIncarnation: 1 }, 300)
    expect(runCore(core, 1000, everyone).broadcasts).toEqual([])
    expect(core.incarnation()).toBe(2)
  })

  it('refutes suspect, dead and left about itself, and alive claims of a newer incarnation', () => {
    const core = coreKnowing(['b'])
    const say = (update: Update, at: number) => {
      runCore(core, at, everyone)
      core.receive('b', { type: 'gossip', updates: [update] }, at)
      core.drain()
    }
    say({ type: 'suspect', id: 'a', incarnation: 5, from: 'b' }, 1000)
    expect(core.incarnation()).toBe(6)
    say({ type: 'dead', id: 'a', incarnation: 6, from: 'b' }, 2000)
    expect(core.incarnation()).toBe(7)
    say({ type: 'left', id: 'a', incarnation: 7 }, 3000)
    expect(core.incarnation()).toBe(8)
    say(alive('a', 20), 4000)
    expect(core.incarnation()).toBe(21)
    say({ type: 'dead', id: 'a', incarnation: 3, from: 'b' }, 5000)
    expect(core.incarnation()).toBe(21)
    expect(core.member('a')?.status).toBe('alive')
  })
})

describe('local health (Lifeguard)', () => {
  it('rises by the missing nacks of a failed probe and stretches the next probe', () => {
    const core = coreKnowing(['b', 'c', 'd', 'e', 'f'])
    const first = nextProbe(core)
    tickAt(core, first.at + 500)
    // The failure and the next probe come in the same tick.
    const ping = tickAt(core, first.at + 1000).sends.find(send => send.message.type === 'ping')
    expect(core.localHealth()).toBe(3)
    if (ping?.message.type !== 'ping') throw new Error('no second probe')
    const second = { at: first.at + 1000, to: ping.to, seq: ping.message.seq }
    // Probe timeout and period scale by health + 1 = 4.
    expect(types(runCore(core, second.at + 1999))).not.toContain('pingReq')
    const requests = tickAt(core, second.at + 2000).sends.filter(send => send.message.type === 'pingReq')
    expect(requests).toHaveLength(3)
    core.receive(second.to, { type: 'ack', seq: second.seq }, second.at + 3900)
    expect(core.localHealth()).toBe(2)
  })

  it('does not rise when every intermediary nacks (the target, not we, is the problem)', () => {
    const core = coreKnowing(['b', 'c', 'd', 'e'])
    const probe = nextProbe(core)
    const requests = tickAt(core, probe.at + 500).sends.filter(send => send.message.type === 'pingReq')
    for (const request of requests) core.receive(request.to, { type: 'nack', seq: probe.seq }, probe.at + 910)
    const ready = tickAt(core, probe.at + 1000)
    expect(ready.events.map(event => event.type)).toEqual(['suspect'])
    expect(core.localHealth()).toBe(0)
  })

  it('rises on a refutation, and falls with successful probes', () => {
    const core = coreKnowing(['b', 'c'])
    core.receive(
      'b',
      { type: 'gossip', updates: [{ type: 'suspect', id: 'a', incarnation: 1, from: 'b' }] },
      10,
    )
    expect(core.localHealth()).toBe(1)
    const probe = nextProbe(core)
    core.receive(probe.to, { type: 'ack', seq: probe.seq }, probe.at + 5)
    expect(core.localHealth()).toBe(0)
  })

  it('treats a late tick as its own stall: deadlines judging others move out', () => {
    const core = coreKnowing(['b', 'c', 'd', 'e'])
    runCore(core, 1000, everyone)
    core.receive(
      'b',
      { type: 'gossip', updates: [{ type: 'suspect', id: 'e', incarnation: 1, from: 'b' }] },
      1000,
    )
    core.drain()
    // Healthy ticks until 20 s, then the process stalls for 10 s, past the 25 s suspicion deadline.
    const before = runCore(core, 20_000, everyone)
    expect(before.events.filter(event => event.type === 'dead')).toEqual([])
    const due = core.nextTickAt()
    const late = tickAt(core, 31_000)
    expect(late.events.filter(event => event.type === 'dead')).toEqual([])
    expect(core.localHealth()).toBeGreaterThanOrEqual(1)
    // The refutation that waited in the inbox during the stall still counts.
    core.receive('e', { type: 'gossip', updates: [alive('e', 2)] }, 31_001)
    expect(core.drain().events.map(event => event.type)).toEqual(['alive'])
    const after = runCore(core, 60_000, everyone)
    expect(after.events.filter(event => event.type === 'dead' && event.member.id === 'e')).toEqual([])
    expect(due).toBeLessThan(21_000)
  })
})

describe('leaving, tombstones and rejoining', () => {
  it('marks a member that leaves as left everywhere, never dead, and stops probing it', () => {
    const cluster = new TestCluster()
    cluster.add('m0')
    for (let i = 1; i < 5; i++) cluster.add(`m${i}`, ['m0'])
    cluster.run(5000)
    cluster.act('m4', (core, now) => core.leave(now))
    cluster.run(3000)
    expect(cluster.core('m4').pendingBroadcasts()).toBe(0)
    cluster.stopped.add('m4')
    const stoppedAt = cluster.now
    cluster.run(60_000)
    for (const observer of ['m0', 'm1', 'm2', 'm3']) expect(cluster.statusOf(observer, 'm4')).toBe('left')
    expect(cluster.eventsAbout('m4', 'left')).toHaveLength(4)
    expect(cluster.eventsAbout('m4', 'dead')).toEqual([])
    expect(cluster.eventsAbout('m4', 'suspect')).toEqual([])
    expect(cluster.sent.filter(sent => sent.to === 'm4' && sent.at >= stoppedAt)).toEqual([])
  })

  it('keeps the dead as tombstones: an alive of the same or an older incarnation does not revive them', () => {
    const core = coreKnowing(['b', 'c'])
    core.receive('c', { type: 'gossip', updates: [alive('b', 5)] }, 10)
    core.receive('c', { type: 'gossip', updates: [{ type: 'dead', id: 'b', incarnation: 5, from: 'c' }] }, 20)
    expect(core.member('b')?.status).toBe('dead')
    core.receive('c', { type: 'gossip', updates: [alive('b', 5), alive('b', 4)] }, 30)
    core.receive(
      'c',
      { type: 'pushPull', reply: true, members: [{ ...record('b', 5), status: 'alive' }] },
      40,
    )
    expect(core.member('b')?.status).toBe('dead')
    expect(core.drain().events.map(event => event.type)).toEqual(['dead'])
    // A restart announces a higher incarnation and rejoins.
    core.receive('b', { type: 'gossip', updates: [alive('b', 6)] }, 50)
    expect(core.member('b')?.status).toBe('alive')
    expect(core.drain().events.map(event => event.type)).toEqual(['joined'])
  })

  it('forgets tombstones after tombstoneTimeout', () => {
    const core = coreKnowing(['b', 'c'], { tombstoneTimeout: 5000 })
    core.receive('c', { type: 'gossip', updates: [{ type: 'dead', id: 'b', incarnation: 1, from: 'c' }] }, 10)
    runCore(core, 4000)
    expect(core.member('b')?.status).toBe('dead')
    runCore(core, 10_000)
    expect(core.member('b')).toBeUndefined()
  })

  it('announces local changes with a new incarnation', () => {
    const cluster = new TestCluster()
    cluster.add('m0')
    cluster.add('m1', ['m0'])
    cluster.add('m2', ['m0'])
    cluster.run(3000)
    cluster.act('m1', (core, now) =>
      core.updateLocal({ load: 0.5, labels: { zone: 'b' }, role: 'voter' }, now),
    )
    cluster.run(1000)
    for (const observer of ['m0', 'm2']) {
      const seen = cluster.core(observer).member('m1')
      expect(seen?.load).toBe(0.5)
      expect(seen?.labels).toEqual({ zone: 'b' })
      expect(seen?.role).toBe('voter')
      expect(seen?.incarnation).toBe(2)
    }
    expect(cluster.eventsAbout('m1', 'updated')).toHaveLength(2)
    expect(() => cluster.core('m1').updateLocal({ load: -1 })).toThrow(RangeError)
  })
})

describe('push-pull', () => {
  it('merges views, so a member that missed all gossip converges', () => {
    const cluster = new TestCluster({ pushPullInterval: 2000 })
    cluster.drop = (_from, _to, message) => message.type === 'gossip'
    cluster.add('m0')
    cluster.add('m1', ['m0'])
    cluster.run(100)
    cluster.add('m2', ['m0'])
    cluster.run(100)
    // The joiner got m0's view in the join reply; m0 got the joiner's.
    expect(cluster.statusOf('m2', 'm1')).toBe('alive')
    expect(cluster.statusOf('m0', 'm2')).toBe('alive')
    cluster.run(10_000)
    for (const observer of ['m0', 'm1', 'm2']) {
      expect(
        cluster
          .core(observer)
          .members()
          .filter(member => member.status === 'alive'),
      ).toHaveLength(3)
    }
  })

  it("turns a peer's dead verdict into a local suspicion, and spreads it", () => {
    const core = coreKnowing(['b', 'c'])
    core.receive('c', { type: 'pushPull', reply: true, members: [{ ...record('b'), status: 'dead' }] }, 10)
    expect(core.member('b')?.status).toBe('suspect')
    expect(runCore(core, 300, everyone).broadcasts).toContainEqual({
      type: 'suspect',
      id: 'b',
      incarnation: 1,
      from: 'c',
    })
  })

  it('answers a push-pull request with its own state', () => {
    const core = coreKnowing(['b'])
    core.receive('c', { type: 'pushPull', reply: false, members: [{ ...record('c'), status: 'alive' }] }, 10)
    const ready = core.drain()
    expect(ready.sends).toHaveLength(1)
    const reply = ready.sends[0].message
    expect(reply.type === 'pushPull' && reply.reply).toBe(true)
    // Its state as it was before merging the request.
    expect(reply.type === 'pushPull' && reply.members.map(member => member.id).sort()).toEqual(['a', 'b'])
    expect(core.member('c')?.status).toBe('alive')
    expect(ready.events.map(event => [event.type, event.member.id])).toEqual([['joined', 'c']])
  })

  it('retries the join until a seed answers', () => {
    const core = new Swim({ self: localRecord('a'), incarnation: 1, now: 0, random: seededRandom(1) })
    core.join(['s'], 0)
    expect(core.drain().sends.map(send => [send.to, send.message.type])).toEqual([['s', 'pushPull']])
    expect(runCore(core, 2500).sends.filter(send => send.to === 's')).toHaveLength(2)
    core.receive('s', { type: 'pushPull', reply: true, members: [{ ...record('s'), status: 'alive' }] }, 2600)
    core.drain()
    const after = runCore(core, 10_000, everyone).sends.filter(send => send.message.type === 'pushPull')
    // No more join requests (a periodic push-pull may fall in the window).
    expect(after.length).toBeLessThanOrEqual(1)
    expect(core.member('s')?.status).toBe('alive')
  })
})

describe('dissemination', () => {
  it('publishes an update it originates retransmitMult × ceil(log10(n + 1)) times, then stops', () => {
    const core = coreKnowing(['b', 'c', 'd', 'e'], { retransmitMult: 4 })
    core.updateLocal({ load: 0.25 }, 0)
    const ready = runCore(core, 20_000, everyone)
    const published = ready.broadcasts.filter(
      update => update.type === 'alive' && update.member.id === 'a' && update.member.load === 0.25,
    )
    // n = 5: 4 × ceil(log10 6) = 4.
    expect(published).toHaveLength(4)
    expect(core.pendingBroadcasts()).toBe(0)
  })

  it("publishes an update once among 20 members with retransmitScale 'none' (gossipsub's own flooding)", () => {
    const others = Array.from({ length: 19 }, (_, i) => `m${i}`)
    const core = coreKnowing(others, { retransmitMult: 1, retransmitScale: 'none' })
    core.updateLocal({ load: 0.25 }, 0)
    const published = runCore(core, 20_000, everyone).broadcasts.filter(
      update => update.type === 'alive' && update.member.id === 'a' && update.member.load === 0.25,
    )
    expect(published).toHaveLength(1)
  })

  it('sends the first copy at once and spaces the others by the gossip interval', () => {
    const core = coreKnowing(['b'], { retransmitMult: 4 })
    runCore(core, 1000, everyone)
    core.updateLocal({ load: 0.5 }, 1000)
    const mine = (updates: Update[]) =>
      updates.filter(update => update.type === 'alive' && update.member.id === 'a')
    expect(mine(core.drain().broadcasts)).toHaveLength(1)
    expect(core.nextTickAt()).toBeLessThanOrEqual(1200)
    expect(mine(runCore(core, 1199, everyone).broadcasts)).toEqual([])
    expect(mine(tickAt(core, 1200).broadcasts)).toHaveLength(1)
  })

  it('is deterministic for the same inputs', () => {
    const trace = () => {
      const cluster = new TestCluster()
      cluster.add('m0')
      for (let i = 1; i < 6; i++) cluster.add(`m${i}`, ['m0'])
      cluster.drop = (from, to) => (from.charCodeAt(1) * 7 + to.charCodeAt(1) + cluster.now) % 13 === 0
      cluster.run(20_000)
      return JSON.stringify(cluster.sent)
    }
    expect(trace()).toBe(trace())
  })
})
