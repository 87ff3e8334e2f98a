import { updateSubject } from '../../swim/broadcast-queue.ts'
import { type ClaimContext, vetMessage } from '../../swim/claims.ts'
import type { Swim } from '../../swim/swim.ts'
import type { MemberId, PushPullEntry, SwimMessage } from '../../swim/types.ts'

/** What vetting left of a message: the message to take (undefined: nothing), and members to ask directly. */
export interface VettedClaims {
  message: SwimMessage | undefined
  /** Claims refused, for the dropped counter. */
  refused: number
  /** Members another's push-pull named that this member should sync with directly. */
  named: PushPullEntry[]
}

/**
 * Who may say what in SWIM (`src/swim/claims.ts` holds the pure rules): accusations only from members the
 * Raft configuration or the registry name (the accusers; the start seeds until those name anyone), and
 * the view open to members the cluster does not know yet only for `maxPendingMembers` live ones (joiners
 * whose registration has not arrived). One per membership run.
 *
 * Claims (`src/swim/claims.ts`): what a member says of itself (alive, left, refutations) is taken only from
 * that member (the authenticated publisher or sender), on every path; accusations only from members the
 * Raft configuration or the registry name (`refresh().known`, and the start seeds until it names any);
 * incarnations only within a bound of the known one and the wall clock. A push-pull entry about another
 * member never changes one in the view: a member the view lacks is asked directly, and introduced at
 * incarnation 0 (its own word outranks that) if the cluster knows it and the sender may accuse. The view
 * admits members the configuration or the
 * registry name (up to `maxMembers`), and at most `maxPendingMembers` live others (joiners whose
 * registration has not arrived yet).
 */
export class ClaimGate {
  /** Who may accuse; undefined: everyone (a membership with no `refresh`). */
  private accusers?: ReadonlySet<MemberId>
  /** Live members in the view that were not accusers when admitted. */
  private readonly pending = new Set<MemberId>()

  private readonly self: MemberId
  private readonly maxPendingMembers: number

  constructor(self: MemberId, maxPendingMembers: number) {
    this.self = self
    this.maxPendingMembers = maxPendingMembers
  }

  /** A new run: the operator's seeds vouch until the configuration or the registry names anyone. */
  reset(seeds: readonly MemberId[] | undefined): void {
    this.pending.clear()
    this.accusers = seeds === undefined ? undefined : new Set(seeds)
  }

  /** The configuration and the registry, as the last refresh named them (ignored while empty). */
  setAccusers(known: readonly MemberId[] | undefined): void {
    if (known !== undefined && known.length > 0) this.accusers = new Set(known)
  }

  mayAccuse(id: MemberId): boolean {
    return this.accusers === undefined || this.accusers.has(id)
  }

  /**
   * `message` from `from` without the claims it may not make and the members the view may not admit.
   * `unseen` is how many members named by others are waiting to be synced with: a few more an accuser names
   * are asked directly (a joiner's view before its log catches up), and those the cluster knows always.
   */
  vet(from: MemberId, message: SwimMessage, swim: Swim, wallNow: number, unseen: number): VettedClaims {
    const context: ClaimContext = {
      self: this.self,
      mayAccuse: id => this.mayAccuse(id),
      incarnationOf: id => swim.member(id)?.incarnation,
      wallNow,
    }
    const vetted = vetMessage(message, from, context)
    let refused = vetted.refused
    let result = vetted.message
    // After vetting, only the sender's own claims can add a member: the sender itself.
    if (swim.member(from) === undefined) {
      // Probing on behalf of a peer outside the view would let anyone make this member dial anyone.
      if (result.type === 'pingReq') return { message: undefined, refused: refused + 1, named: [] }
      if (introduces(result, from) && !this.admitsToView(from, swim)) {
        if (result.type === 'gossip') {
          const updates = result.updates.filter(update => updateSubject(update) !== from)
          refused += result.updates.length - updates.length
          result = { type: 'gossip', updates }
        } else if (result.type === 'pushPull') {
          const members = result.members.filter(entry => entry.id !== from)
          refused += result.members.length - members.length
          result = { ...result, members }
        }
      }
    }
    let room = this.mayAccuse(from) ? Math.max(0, this.maxPendingMembers - unseen) : 0
    const named = vetted.named.filter(entry => this.mayAccuse(entry.id) || room-- > 0)
    // A member the cluster knows, named in an accuser's push-pull, is introduced into the view at
    // incarnation 0: whatever the member itself says outranks it, and it is probed like any other.
    if (result.type === 'pushPull' && this.mayAccuse(from) && this.accusers !== undefined) {
      const introduced: PushPullEntry[] = []
      for (const entry of named) {
        if (swim.member(entry.id) !== undefined || !this.accusers.has(entry.id)) continue
        introduced.push({ ...entry, incarnation: 0, status: 'alive' })
      }
      if (introduced.length > 0) result = { ...result, members: [...result.members, ...introduced] }
    }
    return { message: result, refused, named }
  }

  /**
   * Whether `id`, not in the view, may enter it: always if the cluster knows it (the core caps the view at
   * `maxMembers`), else while fewer than `maxPendingMembers` live members are waiting to be known.
   */
  private admitsToView(id: MemberId, swim: Swim): boolean {
    if (this.mayAccuse(id)) return true
    if (this.pending.size >= this.maxPendingMembers) this.prunePending(swim)
    if (this.pending.size >= this.maxPendingMembers) return false
    this.pending.add(id)
    return true
  }

  /** Frees the pending places of members now known to the cluster, gone from the view, dead or left. */
  prunePending(swim: Swim): void {
    for (const id of this.pending) {
      const status = swim.member(id)?.status
      if (this.mayAccuse(id) || status === undefined || status === 'dead' || status === 'left') {
        this.pending.delete(id)
      }
    }
  }
}

/** Whether `message` from `from` says `from` is alive (what adds a member to the view). */
function introduces(message: SwimMessage, from: MemberId): boolean {
  if (message.type === 'gossip') {
    return message.updates.some(update => update.type === 'alive' && update.member.id === from)
  }
  if (message.type === 'pushPull') {
    return message.members.some(entry => entry.id === from && entry.status === 'alive')
  }
  return false
}
