/**
 * What wakes an idle agent's membership: the shell (`src/agent/cluster/membership.ts`) on a virtual
 * scheduler that counts the timers it fires, with a peer that answers every probe at once. Each wake-up of
 * an idle process costs it more than the little work it runs, so the refresh (registry seeds, the local
 * record) rides on the SWIM core's tick rather than a timer of its own.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { Membership } from '../../src/agent/cluster/membership.ts'
import type { MembershipPubSub } from '../../src/agent/cluster/swim-wire.ts'
import { resolveMembership } from '../../src/agent/options.ts'
import type { DirectMessage, SwimMessage } from '../../src/swim/types.ts'
import { type Cancel, type Scheduler, VirtualScheduler } from '../../src/time/index.ts'

const CONFIG = resolveMembership('fast')

/** A scheduler that counts the distinct moments a timer fired: the wake-ups of a real process. */
class WakeupCounter implements Scheduler {
  readonly base = new VirtualScheduler({ wallStart: 1_700_000_000_000 })
  readonly wakeups = new Set<number>()
  now(): number {
    return this.base.now()
  }
  wallNow(): number {
    return this.base.wallNow()
  }
  after(delayMs: number, fn: () => void): Cancel {
    return this.base.after(delayMs, () => this.fire(fn))
  }
  every(intervalMs: number, fn: () => void): Cancel {
    return this.base.every(intervalMs, () => this.fire(fn))
  }
  private fire(fn: () => void): void {
    this.wakeups.add(this.base.now())
    fn()
  }
}

async function peerId(): Promise<PeerId> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
}

describe('membership shell at rest', () => {
  it('refreshes every probe period without a wake-up of its own', async () => {
    const [self, other] = [await peerId(), await peerId()]
    const scheduler = new WakeupCounter()
    let refreshes = 0
    const pubsub: MembershipPubSub = {
      subscribe: () => {},
      unsubscribe: () => {},
      publish: async () => ({ recipients: [] }),
      addEventListener: () => {},
      removeEventListener: () => {},
      getSubscribers: () => [other],
    }
    const membership = new Membership({
      components: {
        peerId: self,
        registrar: { handle: async () => {}, unhandle: async () => {} },
        connectionManager: { openStream: async () => Promise.reject(new Error('no network in this test')) },
        logger: defaultLogger(),
        peerStore: { merge: async () => ({}) as never },
      },
      pubsub: () => pubsub,
      config: CONFIG,
      scheduler,
      random: () => 0.5,
      refresh: () => {
        refreshes++
        return { known: [other.toString()] }
      },
    })
    // The other member answers each ping at once; nothing else goes out.
    const shell = membership as unknown as {
      send(to: string, message: DirectMessage | SwimMessage): void
      receive(from: string, bytes: Uint8Array, path: string): void
      swim: { receive(from: string, message: SwimMessage | DirectMessage, now: number): void }
      flush(): void
    }
    shell.send = (to, message) => {
      if (message.type !== 'ping') return
      queueMicrotask(() => {
        shell.swim.receive(to, { type: 'ack', seq: message.seq }, membership.now())
        shell.flush()
      })
    }
    await membership.start({
      clusterId: 'c',
      self: {
        id: self.toString(),
        name: 's',
        addrs: [],
        capabilities: [],
        labels: {},
        role: 'nonvoter',
        load: 0,
      },
      seeds: [other.toString()],
    })
    // The seed's answer puts the other member in the view.
    shell.swim.receive(
      other.toString(),
      {
        type: 'pushPull',
        reply: true,
        members: [
          {
            id: other.toString(),
            name: 'o',
            addrs: [],
            capabilities: [],
            labels: {},
            role: 'nonvoter',
            load: 0,
            incarnation: 1,
            status: 'alive',
          },
        ],
      },
      membership.now(),
    )
    shell.flush()
    // Settle, then count over 10 s at rest.
    for (let ms = 0; ms < 2000; ms += 10) {
      scheduler.base.advance(10)
      await Promise.resolve()
    }
    const start = scheduler.now()
    scheduler.wakeups.clear()
    refreshes = 0
    const seconds = 10
    for (let ms = 0; ms < seconds * 1000; ms += 10) {
      scheduler.base.advance(10)
      await Promise.resolve()
    }
    expect(membership.status(other.toString())).toBe('alive')
    const periods = (seconds * 1000) / CONFIG.probeInterval
    // Every probe period, as before.
    expect(refreshes).toBeGreaterThanOrEqual(periods - 1)
    // One wake-up a probe period (the probe; its ack comes on the network), not one more for the refresh.
    expect(scheduler.wakeups.size).toBeLessThanOrEqual(periods + 1)
    expect([...scheduler.wakeups].every(at => at >= start)).toBe(true)
    await membership.stop()
  })
})
