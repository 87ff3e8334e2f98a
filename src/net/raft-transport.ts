/**
 * Raft messages over direct libp2p streams: one long-lived outbound stream per peer, carrying
 * length-prefixed protobuf frames (`raft-codec.ts`) in order.
 *
 * Outbound: `send()` never blocks. It encodes the message and appends it to the peer's queue; the first
 * message of a turn of the event loop is written at once, and the rest of that turn's messages leave
 * together in one write from a microtask (coalescing is what buys throughput). The
 * stream is opened lazily (dial by peer id; the agent puts addresses in the peer store). When the stream
 * asks to drain, messages keep queuing; the queue is bounded in bytes and **drops the oldest** messages
 * when over: the newest carry the current term and commit index, and Raft resends whatever it still needs.
 * When a dial or a stream fails, the queued messages are dropped (they are stale by the time a stream is
 * back) and the next send reopens after a backoff that doubles per consecutive failure.
 *
 * Inbound: each stream is read frame by frame. A frame that does not decode, is over the size limit, or
 * carries a `from` other than the remote peer (a peer cannot speak for another) resets that stream and is
 * logged; the peer may open a new one. If `onMessage` returns a promise, the stream is paused until it
 * settles, which pushes back through the muxer's flow control to the sender's queue. Each remote peer may
 * also deliver at most `messageRate` messages per second (a token bucket): over it, its streams are paused
 * until the bucket refills, the same backpressure, so nothing is dropped and a real leader is never slowed
 * (the default is many times what one sends).
 */

import type { Connection, Logger, Startable, Stream, StreamCloseEvent } from '@libp2p/interface'
import type { Message } from '../raft/types.ts'
import type { Cancel, Scheduler } from '../time/scheduler.ts'
import { timeoutSignal } from '../time/sleep.ts'
import { systemScheduler } from '../time/system-scheduler.ts'
import { type NetComponents, PeerIdCache } from './components.ts'
import {
  checkMaxFrameBytes,
  concatFrames,
  DEFAULT_MAX_FRAME_BYTES,
  FrameDecoder,
  FrameError,
} from './frame.ts'
import { InboundBudget } from './inbound-budget.ts'
import { decodeRaftMessage, encodeRaftFrame } from './raft-codec.ts'
import { checkRateLimit, PeerRateLimiter, type RateLimit } from './rate-limit.ts'
import { lazyWindowUpdates } from './window-updates.ts'

export const RAFT_PROTOCOL = '/conclave/raft/1.0.0'

/**
 * Default inbound message rate per remote peer: 100,000/s sustained and in a burst. A leader coalesces a
 * follower's traffic into one append per flush, so even 10,000 writes/s make far fewer messages than this.
 */
export const DEFAULT_MESSAGE_RATE: Readonly<Required<RateLimit>> = Object.freeze({
  perSecond: 100_000,
  burst: 100_000,
})

/** Receives each decoded message with the remote peer id. A returned promise pauses that stream until it settles. */
export type RaftMessageHandler = (msg: Message, from: string) => void | Promise<void>

export interface RaftTransportInit {
  /** Default `/conclave/raft/1.0.0`. */
  protocol?: string
  onMessage?: RaftMessageHandler
  /** Largest encoded message, both ways. Default 4 MiB. */
  maxFrameBytes?: number
  /** Bytes queued per peer before the oldest messages are dropped. Default 8 MiB; at least `maxFrameBytes` + 8. */
  maxQueueBytes?: number
  /** How long opening a stream (dial included) may take. Default 5 s. */
  dialTimeoutMs?: number
  /** Wait after the first failure of a dial or stream; doubles per consecutive failure. Default 50 ms. */
  minBackoffMs?: number
  /** Longest wait between reopening attempts. Default 2 s. */
  maxBackoffMs?: number
  /** Inbound streams of the protocol allowed per connection. Default 4. */
  maxInboundStreams?: number
  /**
   * Bytes an inbound stream may buffer while paused by a slow `onMessage`. Must exceed the muxer's largest
   * stream window (yamux: 16 MiB), or a paused stream is reset by libp2p. Default 24 MiB.
   */
  inboundBufferBytes?: number
  /**
   * Messages one remote peer may deliver per second, over all its streams; over it, its streams are paused
   * until the bucket refills. Default `DEFAULT_MESSAGE_RATE`; `{ perSecond: Infinity }` turns it off.
   */
  messageRate?: RateLimit
  /** Clocks and timers (dial timeouts, back-off, throttling). Default `systemScheduler`. */
  scheduler?: Scheduler
  /** A message frame that started arriving must be complete within this, or its stream is reset. Default 10 s. */
  frameTimeoutMs?: number
  /**
   * An inbound stream holding no frame for this long is closed (the sender opens a new one when it has a
   * message; what it sent meanwhile is still read). Default 30 s.
   */
  idleTimeoutMs?: number
  /**
   * Bytes of unread frames one peer's inbound streams may hold together in their decoders; the stream
   * that goes over is reset. Default `inboundBufferBytes` + `maxFrameBytes`.
   */
  maxBufferedPerPeer?: number
}

export interface RaftTransportStats {
  /** Messages written to a stream. */
  sent: number
  /** Stream writes those messages took: `sent / writes` is how well sends were coalesced. */
  writes: number
  /** Messages decoded from inbound streams and handed to `onMessage`. */
  received: number
  /** Messages dropped before reaching a stream: queue over its bound, failed dial or stream, invalid, stopped. */
  dropped: number
  /** Inbound streams reset for a bad frame or a forged sender. */
  resets: number
  /** Inbound streams closed for holding no frame for `idleTimeoutMs`. */
  idleClosed: number
  /** Times an inbound stream was paused because its peer went over `messageRate`. */
  throttled: number
  /** Outbound streams opened. */
  streamsOpened: number
  /** Failed attempts to open an outbound stream. */
  dialFailures: number
  /** Times a write had to wait for a stream to drain (backpressure). */
  drainWaits: number
  bytesSent: number
  bytesReceived: number
}

interface OutboundPeer {
  readonly id: string
  /** Encoded frames waiting for the stream, oldest first from `head`. */
  frames: Uint8Array[]
  head: number
  queuedBytes: number
  stream: Stream | undefined
  flushing: boolean
  scheduled: boolean
  /** Consecutive failures since the last stream opened. */
  failures: number
  /** No reopening attempt before this time (the scheduler's monotonic ms). */
  retryAt: number
  /** Cancels the pending reopening attempt, if one is armed. */
  retryTimer: Cancel | undefined
}

/** A libp2p service factory: `services: { raft: raftTransport({ onMessage }) }`. */
export function raftTransport(init: RaftTransportInit = {}): (components: NetComponents) => RaftTransport {
  return components => new RaftTransport(components, init)
}

export class RaftTransport implements Startable {
  readonly protocol: string
  /** Where decoded messages go; may be set after construction. Messages arriving while unset are dropped. */
  onMessage: RaftMessageHandler | undefined
  private readonly components: NetComponents
  private readonly log: Logger
  private readonly maxFrameBytes: number
  private readonly maxQueueBytes: number
  private readonly dialTimeoutMs: number
  private readonly minBackoffMs: number
  private readonly maxBackoffMs: number
  private readonly maxInboundStreams: number
  private readonly inboundBufferBytes: number
  private readonly budget: InboundBudget
  private readonly peers = new Map<string, OutboundPeer>()
  private readonly inbound = new Map<string, Set<Stream>>()
  private readonly peerIds = new PeerIdCache()
  private readonly limiter: PeerRateLimiter
  private readonly scheduler: Scheduler
  private readonly counters: RaftTransportStats = {
    sent: 0,
    writes: 0,
    received: 0,
    dropped: 0,
    resets: 0,
    idleClosed: 0,
    throttled: 0,
    streamsOpened: 0,
    dialFailures: 0,
    drainWaits: 0,
    bytesSent: 0,
    bytesReceived: 0,
  }
  private started = false
  private shutdown = new AbortController()

  constructor(components: NetComponents, init: RaftTransportInit = {}) {
    this.components = components
    this.log = components.logger.forComponent('conclave:net:raft')
    this.protocol = init.protocol ?? RAFT_PROTOCOL
    this.onMessage = init.onMessage
    this.maxFrameBytes = checkMaxFrameBytes(init.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES)
    this.maxQueueBytes = init.maxQueueBytes ?? Math.max(8 * 1024 * 1024, this.maxFrameBytes + 8)
    if (!(this.maxQueueBytes >= this.maxFrameBytes + 8)) {
      throw new RangeError(
        'maxQueueBytes must be at least maxFrameBytes + 8, or a largest message could never go',
      )
    }
    this.dialTimeoutMs = init.dialTimeoutMs ?? 5_000
    this.minBackoffMs = init.minBackoffMs ?? 50
    this.maxBackoffMs = init.maxBackoffMs ?? 2_000
    this.maxInboundStreams = init.maxInboundStreams ?? 4
    this.inboundBufferBytes = init.inboundBufferBytes ?? 24 * 1024 * 1024
    const scheduler = init.scheduler ?? systemScheduler
    this.scheduler = scheduler
    this.limiter = new PeerRateLimiter(checkRateLimit(init.messageRate, DEFAULT_MESSAGE_RATE), () =>
      scheduler.now(),
    )
    this.budget = new InboundBudget({
      ...(init.frameTimeoutMs === undefined ? {} : { frameTimeoutMs: init.frameTimeoutMs }),
      ...(init.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: init.idleTimeoutMs }),
      maxBufferedPerPeer: init.maxBufferedPerPeer ?? this.inboundBufferBytes + this.maxFrameBytes,
      scheduler,
    })
  }

  readonly [Symbol.toStringTag] = 'conclave:raft-transport'

  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    this.shutdown = new AbortController()
    try {
      await this.components.registrar.handle(this.protocol, this.handleStream, {
        maxInboundStreams: this.maxInboundStreams,
        // One live stream per peer, plus one still closing after a reconnect.
        maxOutboundStreams: 2,
      })
    } catch (err) {
      this.started = false
      throw err
    }
  }

  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    this.shutdown.abort()
    const reason = new Error('Raft transport stopped')
    for (const peer of this.peers.values()) this.discardPeer(peer, reason)
    this.peers.clear()
    for (const streams of this.inbound.values()) for (const stream of streams) stream.abort(reason)
    this.inbound.clear()
    try {
      await this.components.registrar.unhandle(this.protocol)
    } catch (err) {
      this.log.error('could not unregister %s - %e', this.protocol, err)
    }
  }

  isStarted(): boolean {
    return this.started
  }

  /**
   * Queues `msg` for peer `to` and returns at once. Returns false if the message was dropped on the spot
   * (transport stopped, message invalid or over the frame limit, `to` not a peer id); the counters and the
   * log say which. Messages to one peer are written in the order sent; any of them may be lost.
   */
  send(to: string, msg: Message): boolean {
    if (!this.started) {
      this.counters.dropped++
      return false
    }
    let frame: Uint8Array
    let peer: OutboundPeer
    try {
      frame = encodeRaftFrame(msg, this.maxFrameBytes)
      peer = this.peers.get(to) ?? this.addPeer(to)
    } catch (err) {
      this.counters.dropped++
      this.log.error('dropping %s message to %s - %e', msg?.type, to, err)
      return false
    }
    peer.frames.push(frame)
    peer.queuedBytes += frame.byteLength
    while (peer.queuedBytes > this.maxQueueBytes) this.dropOldest(peer)
    if (!peer.scheduled && !peer.flushing) {
      peer.scheduled = true
      // The first message of a turn goes out at once (latency: a microtask can wait behind tens of µs of
      // libp2p work); the rest of the turn's messages follow in one write from the microtask.
      if (peer.stream !== undefined) void this.flush(peer)
      queueMicrotask(() => {
        peer.scheduled = false
        if (peer.frames.length > peer.head) void this.flush(peer)
      })
    }
    return true
  }

  /**
   * Closes (resets) every stream to and from `peer` and drops what is queued for it, as a partition
   * does; the next `send` to it opens a new stream at once.
   */
  closePeer(peer: string): void {
    const reason = new Error('Closed by closePeer')
    const outbound = this.peers.get(peer)
    if (outbound !== undefined) {
      this.peers.delete(peer)
      this.discardPeer(outbound, reason)
    }
    const streams = this.inbound.get(peer)
    if (streams !== undefined) {
      this.inbound.delete(peer)
      for (const stream of streams) stream.abort(reason)
    }
  }

  /** A snapshot of the counters. */
  stats(): RaftTransportStats {
    return { ...this.counters }
  }

  /** Bytes waiting in `peer`'s queue (not yet handed to its stream). */
  queuedBytes(peer: string): number {
    return this.peers.get(peer)?.queuedBytes ?? 0
  }

  // -------------------------------------------------------------------------------------------------------
  // Outbound

  private addPeer(id: string): OutboundPeer {
    this.peerIds.get(id) // throws for a string that is not a peer id
    const peer: OutboundPeer = {
      id,
      frames: [],
      head: 0,
      queuedBytes: 0,
      stream: undefined,
      flushing: false,
      scheduled: false,
      failures: 0,
      retryAt: 0,
      retryTimer: undefined,
    }
    this.peers.set(id, peer)
    return peer
  }

  private dropOldest(peer: OutboundPeer): void {
    const frame = peer.frames[peer.head]
    peer.frames[peer.head] = EMPTY
    peer.head++
    peer.queuedBytes -= frame.byteLength
    this.counters.dropped++
    // Compact once the dropped prefix is half the array, so drops stay amortized O(1).
    if (peer.head * 2 >= peer.frames.length) {
      peer.frames = peer.frames.slice(peer.head)
      peer.head = 0
    }
  }

  private dropQueued(peer: OutboundPeer): void {
    this.counters.dropped += peer.frames.length - peer.head
    peer.frames = []
    peer.head = 0
    peer.queuedBytes = 0
  }

  private discardPeer(peer: OutboundPeer, reason: Error): void {
    this.dropQueued(peer)
    peer.retryTimer?.()
    peer.retryTimer = undefined
    const stream = peer.stream
    peer.stream = undefined
    stream?.abort(reason)
  }

  /** Writes everything queued for `peer`, opening its stream if needed; one flush runs per peer at a time. */
  private async flush(peer: OutboundPeer): Promise<void> {
    if (peer.flushing) return
    peer.flushing = true
    try {
      while (this.started && peer.frames.length > peer.head && this.peers.get(peer.id) === peer) {
        const stream = peer.stream
        if (stream === undefined) {
          const wait = peer.retryAt - this.scheduler.now()
          if (wait > 0) {
            this.armRetry(peer, wait)
            return
          }
          if ((await this.open(peer)) === undefined) return
          continue
        }
        const count = peer.frames.length - peer.head
        const batch = concatFrames(
          peer.head === 0 ? peer.frames : peer.frames.slice(peer.head),
          peer.queuedBytes,
        )
        peer.frames = []
        peer.head = 0
        peer.queuedBytes = 0
        let writable: boolean
        try {
          writable = stream.send(batch)
        } catch (err) {
          this.counters.dropped += count
          this.streamFailed(peer, stream, err)
          continue
        }
        this.counters.sent += count
        this.counters.writes++
        this.counters.bytesSent += batch.byteLength
        if (!writable) {
          this.counters.drainWaits++
          try {
            await stream.onDrain({ signal: this.shutdown.signal })
          } catch {
            // The stream closed or the transport stopped; the close listener has dealt with it.
          }
        }
      }
    } finally {
      peer.flushing = false
      // Messages queued while an abandoned open was pending still need a flush.
      if (
        this.started &&
        peer.frames.length > peer.head &&
        peer.retryTimer === undefined &&
        this.peers.get(peer.id) === peer &&
        !peer.scheduled
      ) {
        peer.scheduled = true
        queueMicrotask(() => {
          peer.scheduled = false
          void this.flush(peer)
        })
      }
    }
  }

  private armRetry(peer: OutboundPeer, wait: number): void {
    if (peer.retryTimer !== undefined) return
    peer.retryTimer = this.scheduler.after(
      wait,
      () => {
        peer.retryTimer = undefined
        void this.flush(peer)
      },
      { keepAlive: true },
    )
  }

  /** Opens the peer's stream; on failure records it and returns undefined, as it does if the peer was discarded meanwhile. */
  private async open(peer: OutboundPeer): Promise<Stream | undefined> {
    let stream: Stream
    try {
      stream = await this.components.connectionManager.openStream(this.peerIds.get(peer.id), this.protocol, {
        signal: AbortSignal.any([this.shutdown.signal, timeoutSignal(this.scheduler, this.dialTimeoutMs)]),
      })
    } catch (err) {
      if (this.started && this.peers.get(peer.id) === peer) {
        this.counters.dialFailures++
        this.log('could not open a raft stream to %s - %e', peer.id, err)
        this.recordFailure(peer)
      }
      return undefined
    }
    if (!this.started || this.peers.get(peer.id) !== peer) {
      stream.abort(new Error('Stream no longer wanted'))
      return undefined
    }
    this.counters.streamsOpened++
    peer.failures = 0
    peer.stream = stream
    lazyWindowUpdates(stream)
    stream.addEventListener('close', (evt: StreamCloseEvent) => {
      if (peer.stream !== stream) return
      peer.stream = undefined
      if (evt.error !== undefined) {
        this.log('raft stream to %s failed - %e', peer.id, evt.error)
        this.recordFailure(peer)
      }
    })
    // The remote ending its side means it is done with this stream (it stopped): use a new one next time.
    stream.addEventListener('remoteCloseWrite', () => {
      if (peer.stream === stream) peer.stream = undefined
      stream.close().catch(err => stream.abort(err))
    })
    return stream
  }

  private streamFailed(peer: OutboundPeer, stream: Stream, err: unknown): void {
    this.log('raft stream to %s failed - %e', peer.id, err)
    if (peer.stream === stream) {
      peer.stream = undefined
      this.recordFailure(peer)
    }
    stream.abort(err instanceof Error ? err : new Error(String(err)))
  }

  /** Drops what is queued (stale by the time a stream is back) and backs off before the next attempt. */
  private recordFailure(peer: OutboundPeer): void {
    this.dropQueued(peer)
    peer.failures++
    const backoff = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** Math.min(peer.failures - 1, 30))
    peer.retryAt = this.scheduler.now() + backoff
  }

  // -------------------------------------------------------------------------------------------------------
  // Inbound

  private readonly handleStream = (stream: Stream, connection: Connection): void => {
    const remote = connection.remotePeer.toString()
    if (!this.started) {
      stream.abort(new Error('Raft transport stopped'))
      return
    }
    stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, this.inboundBufferBytes)
    lazyWindowUpdates(stream)
    let streams = this.inbound.get(remote)
    if (streams === undefined) {
      streams = new Set()
      this.inbound.set(remote, streams)
    }
    streams.add(stream)

    const self = this.components.peerId?.toString()
    const decoder = new FrameDecoder(this.maxFrameBytes)
    const budget = this.budget.watch(
      remote,
      stream,
      err => {
        this.counters.resets++
        this.log('resetting raft stream from %s - %e', remote, err)
      },
      () => {
        this.counters.idleClosed++
        stream.close().catch(err => stream.abort(err))
      },
    )
    let waiting = false
    /** A frame read while the peer was over its rate: delivered first once the bucket refills. */
    let held: Uint8Array | undefined
    let cancelThrottle: Cancel | undefined

    const resume = (): void => {
      waiting = false
      if (stream.status !== 'open') return
      if (stream.readStatus === 'paused') stream.resume()
      deliver()
    }
    const throttle = (): void => {
      waiting = true
      this.counters.throttled++
      if (stream.readStatus === 'readable') stream.pause()
      cancelThrottle = this.scheduler.after(
        this.limiter.waitMs(remote),
        () => {
          cancelThrottle = undefined
          resume()
        },
        { keepAlive: true },
      )
    }
    const deliver = (): void => {
      while (!waiting) {
        let msg: Message
        try {
          const frame = held ?? decoder.next()
          held = undefined
          if (frame === undefined) {
            if (decoder.bufferedBytes > 0) budget.waiting()
            else budget.idle()
            return
          }
          budget.completed()
          if (!this.limiter.take(remote)) {
            held = frame
            throttle()
            return
          }
          msg = decodeRaftMessage(frame)
          if (msg.from !== remote) throw new FrameError(`Message claims to be from ${msg.from}`)
          if (self !== undefined && msg.to !== self) throw new FrameError(`Message addressed to ${msg.to}`)
        } catch (err) {
          this.resetInbound(stream, remote, err)
          return
        }
        this.counters.received++
        const pending = this.dispatch(msg, remote)
        if (pending !== undefined) {
          waiting = true
          if (stream.readStatus === 'readable') stream.pause()
          pending.then(resume, err => {
            this.log.error('onMessage failed for a %s message from %s - %e', msg.type, remote, err)
            resume()
          })
        }
      }
    }

    stream.addEventListener('message', evt => {
      this.counters.bytesReceived += evt.data.byteLength
      budget.busy()
      decoder.push(evt.data)
      if (!waiting) deliver()
      budget.account(decoder.bufferedBytes)
    })
    stream.addEventListener('remoteCloseWrite', () => {
      stream.close().catch(err => stream.abort(err))
    })
    stream.addEventListener('close', () => {
      cancelThrottle?.()
      budget.close()
      held = undefined
      const current = this.inbound.get(remote)
      if (current === undefined) return
      current.delete(stream)
      if (current.size === 0) this.inbound.delete(remote)
    })
  }

  private dispatch(msg: Message, from: string): Promise<void> | undefined {
    const handler = this.onMessage
    if (handler === undefined) return undefined
    try {
      const result = handler(msg, from)
      return result instanceof Promise ? result : undefined
    } catch (err) {
      // The application's failure, not the peer's: log it and keep the stream.
      this.log.error('onMessage threw for a %s message from %s - %e', msg.type, from, err)
      return undefined
    }
  }

  private resetInbound(stream: Stream, remote: string, err: unknown): void {
    this.counters.resets++
    this.log.error('resetting raft stream from %s - %e', remote, err)
    stream.abort(err instanceof Error ? err : new FrameError(String(err)))
  }
}

const EMPTY = new Uint8Array(0)
