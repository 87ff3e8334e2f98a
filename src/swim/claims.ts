/**
 * Who may say what about a member, checked on every message before the core sees it (the shell calls
 * `vetMessage` with the sender the transport authenticated: the stream's remote peer, or the gossipsub
 * publisher whose key signed the message).
 *
 * - What a member says of itself (`alive`, `left`, and so its refutations) is taken only from that member,
 *   on every path: gossip, direct gossip and push-pull. A push-pull entry about another member is never
 *   merged as alive or left; its id is handed back (`named`) so the shell can ask that member directly,
 *   whose answer then speaks for itself.
 * - Accusations (`suspect`, `dead`, and the `suspectIncarnation` of a ping or ping-req) are taken only from
 *   members that may accuse (`mayAccuse`: the Raft configuration or the agent registry), about members in
 *   this view.
 * - Incarnations stay far from the largest one the codec encodes (2^53 − 1). Incarnations start from a
 *   start time in ms and rise by one per change, so honest ones sit near the wall clock. An accusation
 *   above max(this view's incarnation of the member, wall clock ms + `MAX_INCARNATION_LEAD`) is refused as
 *   malformed: a forged death at 2^53 − 1 is refused, the victim's refutation (one above the accusation)
 *   always encodes, and accusers can push a victim's incarnation up by one per message at most, never
 *   towards the edge. A member's own claim may go up to max(its incarnation here, wall clock) + the lead:
 *   a member can only push its own incarnation up, never another's.
 *
 * Pure: the context carries the view, the accusers and the wall clock.
 */

import type { MemberId, PushPullEntry, SwimMessage, Update } from './types.ts'

/**
 * How far above max(the known incarnation, the wall clock in ms) a claim may go: 2^32 ms is about 49.7
 * days, room for clock skew and a member's own changes, and 2^21 times below the codec's edge.
 */
export const MAX_INCARNATION_LEAD = 2 ** 32

export interface ClaimContext {
  /** This member's id. */
  self: MemberId
  /** Whether `id` may accuse others (suspect, dead): a member of the Raft configuration or the registry. */
  mayAccuse(id: MemberId): boolean
  /** The incarnation this view holds for `id` (this member's own included); undefined if not in the view. */
  incarnationOf(id: MemberId): number | undefined
  /** Wall-clock ms since the epoch. */
  wallNow: number
}

export interface VettedMessage {
  /** The message with every claim the sender may not make removed (the same object if nothing was). */
  message: SwimMessage
  /** How many updates, entries or fields were removed. */
  refused: number
  /**
   * Push-pull entries naming members this view lacks: ask those members directly rather than take the
   * entry (its addresses may serve to dial them: a dial checks the peer id, so a wrong one only fails).
   */
  named: PushPullEntry[]
}

/** The highest incarnation `id`'s own claims (alive, left) may carry in `context`. */
export function ownCeiling(id: MemberId, context: ClaimContext): number {
  return Math.max(context.incarnationOf(id) ?? 0, context.wallNow) + MAX_INCARNATION_LEAD
}

/** The highest incarnation an accusation of `id` may carry in `context`. */
export function accusationCeiling(id: MemberId, context: ClaimContext): number {
  return Math.max(context.incarnationOf(id) ?? 0, context.wallNow + MAX_INCARNATION_LEAD)
}

/** `message` from `from` without the claims `from` may not make (see the file comment). */
export function vetMessage(message: SwimMessage, from: MemberId, context: ClaimContext): VettedMessage {
  switch (message.type) {
    case 'ping':
    case 'pingReq': {
      const suspected = message.suspectIncarnation
      if (suspected === undefined || mayAccuse(from, message.target, suspected, context)) {
        return { message, refused: 0, named: [] }
      }
      // The probe itself stands (answering it costs nothing); only the accusation it carries goes.
      const { suspectIncarnation: _, ...probe } = message
      return { message: probe, refused: 1, named: [] }
    }
    case 'gossip': {
      const updates = message.updates.filter(update => updateAllowed(update, from, context))
      const refused = message.updates.length - updates.length
      return { message: refused === 0 ? message : { type: 'gossip', updates }, refused, named: [] }
    }
    case 'pushPull': {
      const members: PushPullEntry[] = []
      const named: PushPullEntry[] = []
      for (const entry of message.members) {
        if (entryAllowed(entry, from, context)) {
          members.push(entry)
        } else if (
          entry.id !== from &&
          entry.id !== context.self &&
          (entry.status === 'alive' || entry.status === 'suspect') &&
          context.incarnationOf(entry.id) === undefined
        ) {
          named.push(entry)
        }
      }
      const refused = message.members.length - members.length
      return { message: refused === 0 ? message : { ...message, members }, refused, named }
    }
    default:
      return { message, refused: 0, named: [] }
  }
}

function updateAllowed(update: Update, from: MemberId, context: ClaimContext): boolean {
  switch (update.type) {
    case 'alive':
      return ownClaim(update.member.id, update.member.incarnation, from, context)
    case 'left':
      return ownClaim(update.id, update.incarnation, from, context)
    case 'suspect':
    case 'dead':
      // The accuser named in the update must be one too: a suspicion learned by push-pull is republished
      // by whoever learned it, under its accuser's name, and distinct accusers shorten the timeout.
      return (
        (update.from === from || context.mayAccuse(update.from)) &&
        mayAccuse(from, update.id, update.incarnation, context)
      )
  }
}

function entryAllowed(entry: PushPullEntry, from: MemberId, context: ClaimContext): boolean {
  if (entry.id === from) {
    // A member's view of itself is alive, or left once it leaves.
    return (
      (entry.status === 'alive' || entry.status === 'left') &&
      ownClaim(entry.id, entry.incarnation, from, context)
    )
  }
  // Another member's record is its own to give; only an accusation about it may come from others.
  if (entry.status !== 'suspect' && entry.status !== 'dead') return false
  return mayAccuse(from, entry.id, entry.incarnation, context)
}

function ownClaim(id: MemberId, incarnation: number, from: MemberId, context: ClaimContext): boolean {
  return id === from && incarnation <= ownCeiling(id, context)
}

/** Whether `from` may accuse `id` at `incarnation`: an accuser, about a member of this view, within bounds. */
function mayAccuse(from: MemberId, id: MemberId, incarnation: number, context: ClaimContext): boolean {
  return (
    id !== from &&
    context.mayAccuse(from) &&
    context.incarnationOf(id) !== undefined &&
    incarnation <= accusationCeiling(id, context)
  )
}
