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
  private readonly dials = new Map<string, Promise<void>>()
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
   * Waits up to `waitMs` for a connection to `peer`, dialling it unless a dial is under way. Never throws:
   * the request that follows meets the failure, if there is one, and a failed dial is begun again next time.
   */
  async connected(peer: PeerId, waitMs: number): Promise<void> {
    const key = peer.toString()
    let dial = this.dials.get(key)
    if (dial === undefined) {
      dial = this.dialer.openConnection(peer, { signal: this.signal }).then(
        () => {},
        () => {
          this.dials.delete(key)
        },
      )
      this.dials.set(key, dial)
    }
    let cancel: Cancel | undefined
    await Promise.race([
      dial,
      new Promise<void>(resolve => {
        cancel = this.scheduler.after(waitMs, resolve, { keepAlive: true })
      }),
    ])
    cancel?.()
  }

  /** The join is over: dials still under way are abandoned (an open connection stays open). */
  stop(): void {
    this.cancelDeadline()
    this.stopped.abort()
  }
}
