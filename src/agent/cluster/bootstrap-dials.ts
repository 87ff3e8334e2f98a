import type { PeerId } from '@libp2p/interface'
import type { Cancel, Scheduler } from '../../time/index.ts'

/** What the dials need of libp2p's connection manager. */
export interface Dialer {
  openConnection(peer: PeerId, options?: { signal?: AbortSignal }): Promise<unknown>
}

/**
 * The connections a joining agent opens to its bootstrap members: one dial per member for the whole join,
 * bounded by the join's deadline, not by one request's. Many agents started at once on few cores can take
 * longer to finish a handshake (TCP, Noise, Yamux, each side's turn on a busy CPU) than a request's dial
 * timeout; a request that gave up aborted the handshake, and the next one began it again from the start, so
 * some joiners never got a connection while their retries added handshakes to the load. A request waits a
 * while for its member's dial, and the dial goes on while the joiner backs off; the request after finds
 * the connection open.
 */
export class BootstrapDials {
  private readonly dialer: Dialer
  private readonly scheduler: Scheduler
  private readonly dials = new Map<string, Promise<boolean>>()
  private readonly stopped = new AbortController()
  private readonly signal: AbortSignal
  private readonly cancelDeadline: Cancel

  /** Dials last until `deadline` (on the scheduler's clock), `signals` abort, or `stop()`. */
  constructor(dialer: Dialer, scheduler: Scheduler, deadline: number, signals: AbortSignal[]) {
    this.dialer = dialer
    this.scheduler = scheduler
    const expired = new AbortController()
    this.cancelDeadline = scheduler.after(Math.max(0, deadline - scheduler.now()), () => expired.abort())
    this.signal = AbortSignal.any([...signals, expired.signal, this.stopped.signal])
  }

  /**
   * Waits up to `waitMs` for a connection to `peer`, dialling it unless a dial is under way, and says how it
   * stands: `connected`, `failed` (begun again next time; the request that follows meets the reason), or
   * `pending` (the handshake goes on). Never throws.
   *
   * On `pending` the caller sends no request: the request would dial on its own, under the request's short
   * deadline, and that dial joins the handshake under way and cuts it short (bench:scale, 50 agents: 17 joins'
   * handshakes aborted so, "EncryptionFailedError: The operation was aborted due to timeout", and 175 stream
   * opens timed out at 5 s, while the founder's event loop ran up to 11 s late; 20 agents never got in).
   */
  async connected(peer: PeerId, waitMs: number): Promise<'connected' | 'pending' | 'failed'> {
    const key = peer.toString()
    let dial = this.dials.get(key)
    if (dial === undefined) {
      dial = this.dialer.openConnection(peer, { signal: this.signal }).then(
        () => true,
        () => {
          this.dials.delete(key)
          return false
        },
      )
      this.dials.set(key, dial)
    }
    let cancel: Cancel | undefined
    const outcome = await Promise.race([
      dial.then((ok): 'connected' | 'failed' => (ok ? 'connected' : 'failed')),
      new Promise<'pending'>(resolve => {
        cancel = this.scheduler.after(waitMs, () => resolve('pending'), { keepAlive: true })
      }),
    ])
    cancel?.()
    return outcome
  }

  /** The join is over: dials still under way are abandoned (an open connection stays open). */
  stop(): void {
    this.cancelDeadline()
    this.stopped.abort()
  }
}
