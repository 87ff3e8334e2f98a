/**
 * What SWIM puts on the wire beyond the core's codec: the protocol and topic names, the gossipsub it uses,
 * what a member may say (only of itself: alive, left), record fields cut to the wire's limits, and the plan
 * of direct sends that stands in for gossip.
 *
 * Direct messages (ping, ack, ping-req, nack, push-pull) travel on `/conclave/swim/1.0.0` through an `Rpc`
 * endpoint of its own, used fire-and-forget: the reply is empty and ignored, the core's own acks are separate
 * messages. Rpc already gives what a probe path needs: one long-lived stream per peer (no stream set-up per
 * probe), framing with a size bound, the authenticated sender, a malformed frame resetting only that stream,
 * and timeouts that free whatever a paused peer never answers. A hand-written one-way stream would have to
 * redo all of it to save a few bytes of empty reply per message.
 *
 * Dissemination: each batch the core hands out is published as one `gossip` message on the gossipsub topic
 * `conclave/<clusterId>/swim/1.0.0` (each update ceil(log10(n + 1)) times with the agent's presets: gossipsub
 * floods every publish by itself). What a member says of itself (alive, refutations, left) also goes
 * directly to a few live members the publish's flood does not reach (`DIRECT_FANOUT`): nobody else may
 * repeat it, and gossipsub can accept a publish and still drop it (a mesh not formed yet after a restart).
 * A publish that fails (no subscribed peer yet) goes directly to a few members and is published again a
 * gossip round later. Where there is no gossipsub, the whole batch goes directly, each update once per
 * member. A message that does not decode is counted, logged and dropped; it never throws.
 */

import type { GossipSub } from '@libp2p/gossipsub'
import { pubsubService } from '../../net/pubsub-service.ts'
import { updateIncarnation, updateSubject } from '../../swim/broadcast-queue.ts'
import { DETECTION_PROBE_PERIODS, probePeriod, suspicionTimeout } from '../../swim/config.ts'
import type { LocalFields, MemberId, SwimConfig, Update } from '../../swim/types.ts'
import { SWIM_LIMITS } from '../../swim/validate.ts'

/** The protocol of direct SWIM messages. */
export const SWIM_PROTOCOL = '/conclave/swim/1.0.0'

/** The gossipsub topic SWIM updates of a cluster are published on. */
export function swimTopic(clusterId: string): string {
  return `conclave/${clusterId}/swim/1.0.0`
}

/**
 * The time within which every live member marks a crashed one dead, for a cluster of `memberCount`: the
 * confirmed suspicion timeout plus six probe periods (reaching the member in some probe order, the failed
 * probe with its indirect probes, the confirmations of other members, the gossip of the verdict), a period
 * being `probePeriod` for that size. Stalls of
 * the detecting process itself push its deadlines out and add to it (Lifeguard).
 */
export function detectionBound(config: SwimConfig, memberCount: number): number {
  return suspicionTimeout(config, memberCount) + DETECTION_PROBE_PERIODS * probePeriod(config, memberCount)
}

/** What the membership uses of gossipsub. */
export type MembershipPubSub = Pick<
  GossipSub,
  'subscribe' | 'unsubscribe' | 'publish' | 'addEventListener' | 'removeEventListener'
> &
  Partial<Pick<GossipSub, 'topicValidators' | 'getSubscribers'>>

/**
 * How many members get a member's own news (alive, refutations, left) directly, besides the publish; and
 * how many get a batch whose publish failed. Sending to every live member made each joiner of a storm dial
 * every other agent at once (N² handshakes: Noise, Yamux, identify, gossipsub streams) for news that
 * gossipsub relays anyway: the publish floods every subscribed peer this member is connected to, and their
 * meshes carry it on. The few direct copies go to members the flood does not reach.
 */
export const DIRECT_FANOUT = 3

/**
 * Up to `limit` of `live`, at random, preferring those `reached` (by the publish's flood) does not hold:
 * the members that get a direct copy.
 */
export function directTargets<T extends { id: MemberId }>(
  live: readonly T[],
  reached: ReadonlySet<MemberId>,
  limit: number,
  random: () => number,
): T[] {
  const unreached = live.filter(member => !reached.has(member.id))
  const pool = unreached.length > 0 ? unreached : [...live]
  const chosen: T[] = []
  while (chosen.length < limit && pool.length > 0) {
    const [member] = pool.splice(Math.floor(random() * pool.length), 1)
    chosen.push(member)
  }
  return chosen
}

/** The node's gossipsub among libp2p components (`pubsub`), if it has one. */
export function membershipPubSub(components: object): MembershipPubSub | undefined {
  return pubsubService<MembershipPubSub>(components, [
    'subscribe',
    'unsubscribe',
    'publish',
    'addEventListener',
    'removeEventListener',
  ])
}

/**
 * The direct stand-in for gossip, planned: each update once to every live member, including members that
 * come into the view while the core still retransmits it. Streams are reliable, so the retransmissions
 * themselves (meant for lossy gossip) would only multiply the traffic.
 */
export class DirectFanout {
  private readonly sentDirect = new Map<string, Set<MemberId>>()

  /** The batches to send now, by member, of `updates` to the `live` members that have not had them. */
  plan(updates: Update[], live: readonly { id: MemberId }[]): Map<MemberId, Update[]> {
    const batches = new Map<MemberId, Update[]>()
    for (const update of updates) {
      // Suspicions from distinct accusers are distinct news (Lifeguard counts confirmations).
      const from = update.type === 'suspect' || update.type === 'dead' ? update.from : ''
      const key = `${update.type}\n${updateSubject(update)}\n${updateIncarnation(update)}\n${from}`
      let sentTo = this.sentDirect.get(key)
      if (sentTo === undefined) {
        sentTo = new Set()
        this.sentDirect.set(key, sentTo)
      }
      for (const member of live) {
        if (sentTo.has(member.id)) continue
        sentTo.add(member.id)
        let batch = batches.get(member.id)
        if (batch === undefined) {
          batch = []
          batches.set(member.id, batch)
        }
        batch.push(update)
      }
    }
    // Forget the oldest half now and then: a repeat after that is only a duplicate, never wrong.
    if (this.sentDirect.size > 1024) {
      for (const key of [...this.sentDirect.keys()].slice(0, 512)) this.sentDirect.delete(key)
    }
    return batches
  }
}

/** Only a member itself says it is alive or has left; the core never relays those for others. */
export function speaksForItself(update: Update, publisher: MemberId): boolean {
  if (update.type === 'alive') return update.member.id === publisher
  if (update.type === 'left') return update.id === publisher
  return true
}

/**
 * The fields cut to what a SWIM record may carry, so an agent with, say, more labels than the wire allows
 * still runs (its record in the view is partial; the registry holds everything).
 */
export function fitFields<T extends LocalFields>(fields: T): T {
  const fitted: T = { ...fields }
  if (fields.name !== undefined) fitted.name = fitString(fields.name, SWIM_LIMITS.nameLength)
  if (fields.addrs !== undefined) {
    fitted.addrs = fields.addrs
      .filter(address => address.length <= SWIM_LIMITS.addrLength && address.isWellFormed())
      .slice(0, SWIM_LIMITS.addrs)
  }
  if (fields.capabilities !== undefined) {
    fitted.capabilities = fields.capabilities
      .filter(item => item.length <= SWIM_LIMITS.capabilityLength && item.isWellFormed())
      .slice(0, SWIM_LIMITS.capabilities)
  }
  if (fields.labels !== undefined) {
    const labels: Record<string, string> = {}
    let count = 0
    for (const [key, value] of Object.entries(fields.labels)) {
      if (count === SWIM_LIMITS.labels) break
      if (key.length > SWIM_LIMITS.labelKeyLength || value.length > SWIM_LIMITS.labelValueLength) continue
      if (!key.isWellFormed() || !value.isWellFormed()) continue
      labels[key] = value
      count++
    }
    fitted.labels = labels
  }
  if (fields.load !== undefined) {
    fitted.load = Number.isFinite(fields.load) ? Math.min(1, Math.max(0, fields.load)) : 0
  }
  return fitted
}

function fitString(text: string, maxLength: number): string {
  const cut = text.length <= maxLength ? text : text.slice(0, maxLength)
  return cut.isWellFormed() ? cut : cut.toWellFormed()
}
