/**
 * What one remote peer may make this node hold in unfinished inbound frames. A frame's length prefix is
 * checked before anything is buffered (`FrameDecoder`), but a peer could still announce a 4 MiB frame and
 * send it slowly, or never finish it, on every stream it may open: 8 peer ids doing that took an agent from
 * 148 MB to 1 GB. So each inbound stream of an endpoint is watched:
 *
 * - a frame that has started must be complete within `frameTimeoutMs` (default 10 s; 4 MiB at 0.4 MB/s):
 *   otherwise that stream is reset (slow-loris);
 * - the bytes the peer's streams hold in their decoders, together, stay within `maxBufferedPerPeer`
 *   (default 4 frames of the endpoint's largest size): the stream that pushes it over is reset.
 *
 * - a stream that holds no frame and runs nothing for `idleTimeoutMs` (default 30 s) is closed, gently
 *   (its writing side ends; the sender opens a new stream when it has something to say), and reset if the
 *   sender does not close its end within the frame timeout: a stream opened and never written holds its
 *   place among the peer's few inbound streams no longer than that.
 *
 * A stream the reader paused (its handlers are busy, its peer is over its rate) holds complete frames, not
 * an unfinished one: the deadline runs only while the decoder waits for the rest of a frame.
 *
 * The idle deadline costs a clock read per frame, not a timer: a stream goes busy and idle again with every
 * frame it carries (SWIM's, Raft's), and cancelling and arming a timer each time was a measurable share of an
 * idle agent's work. One timer runs per idle stream; when it fires it checks when the stream last went idle,
 * and waits out the rest if it has been busy since.
 */

import type { Stream } from '@libp2p/interface'
import type { Scheduler } from '../time/scheduler.ts'
import { FrameError } from './frame.ts'

/** How long a started frame may take to arrive in full, by default. */
export const DEFAULT_FRAME_TIMEOUT_MS = 10_000

/** How long an inbound stream may hold no frame and run nothing, by default. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000

export interface InboundBudgetInit {
  /** Default `DEFAULT_FRAME_TIMEOUT_MS`. */
  frameTimeoutMs?: number
  /** Default `DEFAULT_IDLE_TIMEOUT_MS`. */
  idleTimeoutMs?: number
  /** Bytes of unfinished and unread frames one peer's inbound streams may hold together. */
  maxBufferedPerPeer: number
  /** The clock of the frame deadlines. */
  scheduler: Scheduler
}

/** The budget of one endpoint (an Rpc, a Raft transport), shared by all its inbound streams. */
export class InboundBudget {
  readonly frameTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly maxBufferedPerPeer: number
  readonly scheduler: Scheduler
  private readonly buffered = new Map<string, number>()

  constructor(init: InboundBudgetInit) {
    this.frameTimeoutMs = init.frameTimeoutMs ?? DEFAULT_FRAME_TIMEOUT_MS
    if (!(this.frameTimeoutMs > 0 && this.frameTimeoutMs <= 2 ** 31 - 1)) {
      throw new RangeError(`frameTimeoutMs must be in (0, 2^31), got ${this.frameTimeoutMs}`)
    }
    this.idleTimeoutMs = init.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS
    if (!(this.idleTimeoutMs > 0 && this.idleTimeoutMs <= 2 ** 31 - 1)) {
      throw new RangeError(`idleTimeoutMs must be in (0, 2^31), got ${this.idleTimeoutMs}`)
    }
    this.maxBufferedPerPeer = init.maxBufferedPerPeer
    this.scheduler = init.scheduler
  }

  /** The bytes every peer's streams hold now. */
  get totalBuffered(): number {
    let total = 0
    for (const bytes of this.buffered.values()) total += bytes
    return total
  }

  /** The most one peer's streams hold now. */
  get maxBufferedByOnePeer(): number {
    let most = 0
    for (const bytes of this.buffered.values()) most = Math.max(most, bytes)
    return most
  }

  /** The bytes `peer`'s streams hold now (for tests and stats). */
  bufferedBy(peer: string): number {
    return this.buffered.get(peer) ?? 0
  }

  /**
   * Watches one inbound stream of `peer`; `onReset` is told (after the stream was aborted). With `onIdle`,
   * the stream's idle deadline runs from now and whenever it calls `idle()`; `onIdle` is to close it.
   */
  watch(peer: string, stream: Stream, onReset: (err: FrameError) => void, onIdle?: () => void): StreamBudget {
    const watched = new StreamBudget(this, peer, stream, onReset, this.buffered, onIdle)
    watched.idle()
    return watched
  }
}

/** One inbound stream's share of its peer's budget, and its frame deadline. */
export class StreamBudget {
  private counted = 0
  private cancelDeadline?: () => void
  private cancelIdle?: () => void
  /** When the stream last went idle (the scheduler's `now`), or undefined while it is busy. */
  private idleSince: number | undefined
  private idleClosing = false
  private closed = false

  private readonly budget: InboundBudget
  private readonly peer: string
  private readonly stream: Stream
  private readonly onReset: (err: FrameError) => void
  private readonly totals: Map<string, number>
  private readonly onIdle: (() => void) | undefined

  constructor(
    budget: InboundBudget,
    peer: string,
    stream: Stream,
    onReset: (err: FrameError) => void,
    totals: Map<string, number>,
    onIdle?: () => void,
  ) {
    this.onIdle = onIdle
    this.budget = budget
    this.peer = peer
    this.stream = stream
    this.onReset = onReset
    this.totals = totals
  }

  /** The stream's decoder now holds `bytes`: false (the stream is reset) if that puts its peer over budget. */
  account(bytes: number): boolean {
    if (this.closed) return false
    const total = (this.totals.get(this.peer) ?? 0) + bytes - this.counted
    this.counted = bytes
    this.setTotal(total)
    if (total <= this.budget.maxBufferedPerPeer) return true
    this.reset(
      new FrameError(
        `${this.peer} holds ${total} bytes of unread frames, over its ${this.budget.maxBufferedPerPeer}`,
      ),
    )
    return false
  }

  /** The decoder waits for the rest of a frame: it must come within the frame timeout. */
  waiting(): void {
    if (this.closed || this.cancelDeadline !== undefined) return
    this.cancelDeadline = this.budget.scheduler.after(this.budget.frameTimeoutMs, () => {
      this.cancelDeadline = undefined
      this.reset(
        new FrameError(`A frame from ${this.peer} did not arrive within ${this.budget.frameTimeoutMs} ms`),
      )
    })
  }

  /** The stream holds no frame and runs nothing: it is closed unless something comes within the idle timeout. */
  idle(): void {
    if (this.closed || this.idleClosing || this.onIdle === undefined || this.idleSince !== undefined) return
    this.idleSince = this.budget.scheduler.now()
    // A timer armed in an earlier idle spell is still due, earlier than this spell's end: it waits the rest.
    if (this.cancelIdle === undefined) this.armIdle(this.budget.idleTimeoutMs)
  }

  private armIdle(delayMs: number): void {
    this.cancelIdle = this.budget.scheduler.after(delayMs, () => {
      this.cancelIdle = undefined
      if (this.closed || this.idleSince === undefined) return
      const rest = this.idleSince + this.budget.idleTimeoutMs - this.budget.scheduler.now()
      if (rest > 0) {
        this.armIdle(rest)
        return
      }
      this.idleClosing = true
      this.onIdle?.()
      // A gentle close waits for the sender to end its side too; one that never does is reset.
      this.cancelIdle = this.budget.scheduler.after(this.budget.frameTimeoutMs, () => {
        this.cancelIdle = undefined
        if (!this.closed) {
          this.reset(
            new FrameError(
              `${this.peer} did not close an idle stream within ${this.budget.frameTimeoutMs} ms`,
            ),
          )
        }
      })
    })
  }

  /** Bytes arrived or a request runs: the stream is not idle (a close under way is not called off). */
  busy(): void {
    // The idle timer is left to run: when it fires it finds the stream busy, or idle again since later.
    if (!this.idleClosing) this.idleSince = undefined
  }

  /** A frame arrived in full. */
  completed(): void {
    this.cancelDeadline?.()
    this.cancelDeadline = undefined
  }

  /** The stream closed: its bytes leave the peer's budget. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.completed()
    this.cancelIdle?.()
    this.cancelIdle = undefined
    this.setTotal((this.totals.get(this.peer) ?? 0) - this.counted)
    this.counted = 0
  }

  private reset(err: FrameError): void {
    this.close()
    this.stream.abort(err)
    this.onReset(err)
  }

  private setTotal(total: number): void {
    if (total <= 0) this.totals.delete(this.peer)
    else this.totals.set(this.peer, total)
  }
}
