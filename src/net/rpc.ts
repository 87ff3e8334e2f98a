/**
 * Request/response over libp2p for conclave's own protocols (forwarding writes to the leader, membership
 * probes): `registerRpc(protocol, handler)` on the serving side, `callRpc(peer, protocol, bytes)` on the
 * calling side.
 *
 * All calls from this node to one peer on one protocol share one long-lived stream, and each frame
 * (`rpc.proto`) carries a request id; answers come back in any order. A stream per call would pay a
 * stream open and a protocol negotiation per request (several round trips at worst); a shared stream
 * pays them once, coalesces concurrent requests into one write, and lets a slow request not delay
 * others. The server runs up to `maxConcurrentRequests` handlers per stream and then stops reading it,
 * which holds callers back through the muxer's flow control.
 *
 * Each remote peer may make `requestRate` requests per second per protocol (a token bucket). A request over
 * the rate is not run: it is answered at once with an error named `RateLimitedError`, which callers take as
 * a cue to retry later (the forwarding path does). The default is far above what a busy agent makes.
 *
 * Inbound streams are bounded in time (`InboundBudget`): a request frame must arrive in full within
 * `frameTimeoutMs`, and a stream that holds no frame and runs nothing for `idleTimeoutMs` is closed. That
 * close is clean: the server ends its side and runs nothing that arrives after it, so the caller sends the
 * calls it had in flight on that stream once more, on a new one. The caller holds answers to the same frame
 * deadline: an answer that trickles in resets the stream and fails its calls.
 *
 * One-way messages (`sendOneWay`) travel on the same stream as a request that wants no answer: the server
 * runs the handler and writes nothing back (SWIM's messages, whose answers are messages of their own: the
 * empty reply to each was a third of an idle member's network cost). Such a message is "sent" once its
 * frame is handed to an open stream; whether it arrived, nobody says, as for a datagram. The server's
 * budgets and rate hold for it as for any request (over the rate, it is dropped). Compatibility: a server
 * of an earlier version takes it for an ordinary request and answers it (id 0, which names no call): the
 * caller drops that answer. One can be lost where a call would have gone again: written in the instant
 * the server closes the idle stream (see above), it is not run, and nobody knows to send it again.
 */

import type { Connection, Logger, Startable, Stream } from '@libp2p/interface'
import { AbortError, ClosedError, ConclaveError, InvalidArgumentError } from '../errors.ts'
import type { Scheduler } from '../time/scheduler.ts'
import { timeoutSignal } from '../time/sleep.ts'
import { systemScheduler } from '../time/system-scheduler.ts'
import { type NetComponents, PeerIdCache } from './components.ts'
import { checkMaxFrameBytes, DEFAULT_MAX_FRAME_BYTES, FrameDecoder, FrameError } from './frame.ts'
import { FrameWriter } from './frame-writer.ts'
import { InboundBudget } from './inbound-budget.ts'
import { checkRateLimit, PeerRateLimiter, type RateLimit } from './rate-limit.ts'
import { decodeRpcFrame, encodeRpcFrame, type RpcFrame } from './rpc-codec.ts'
import { lazyWindowUpdates } from './window-updates.ts'

/**
 * Default request rate per remote peer and protocol: 25,000/s sustained, bursts of 50,000. An agent
 * forwarding its writes to the leader makes about one request per write, and conclave's benchmark drives
 * over 10,000 forwarded writes/s from one agent: the limit must sit well above that.
 */
export const DEFAULT_REQUEST_RATE: Readonly<Required<RateLimit>> = Object.freeze({
  perSecond: 25_000,
  burst: 50_000,
})

/** The `errorName` of the answer to a request over the caller's rate: retry after a pause. */
export const RATE_LIMITED_ERROR = 'RateLimitedError'

/**
 * Serves one request; what it resolves to is the response. A rejection reaches the caller as `RpcRemoteError`.
 * `closed` aborts when the request's stream closes (the caller went away): a long wait should end then.
 */
export type RpcHandler = (request: Uint8Array, from: string, closed: AbortSignal) => Promise<Uint8Array>

export interface RpcCallOptions {
  signal?: AbortSignal
  /** Default: the endpoint's `defaultTimeoutMs`. */
  timeoutMs?: number
}

export interface RpcInit {
  /** Largest request or response frame. Default 4 MiB. */
  maxFrameBytes?: number
  /** Call timeout when the call gives none. Default 10 s. */
  defaultTimeoutMs?: number
  /** How long opening a stream (dial included) may take. Default 5 s. */
  dialTimeoutMs?: number
  /** Handlers running at once per inbound stream before the stream stops being read. Default 64. */
  maxConcurrentRequests?: number
  /** Bytes waiting to be written on one stream before calls fail (caller side) or the stream is reset (server side). Default 16 MiB. */
  maxQueueBytes?: number
  /** Inbound streams per connection and protocol. Default 4. */
  maxInboundStreams?: number
  /**
   * Requests one remote peer may make per second on one protocol; over it, requests are answered with
   * `RateLimitedError` without running. Default `DEFAULT_REQUEST_RATE`; `{ perSecond: Infinity }` turns it off.
   */
  requestRate?: RateLimit
  /** Clocks and timers (call timeouts, dial timeouts, the rate limit). Default `systemScheduler`. */
  scheduler?: Scheduler
  /**
   * A frame that started arriving (a request at the server, an answer at the caller) must be complete within
   * this, or its stream is reset. Default 10 s.
   */
  frameTimeoutMs?: number
  /** An inbound stream holding no frame and running nothing is closed after this. Default 30 s. */
  idleTimeoutMs?: number
  /**
   * Bytes of unread request frames one peer's inbound streams may hold together; the stream that goes over
   * is reset. Default 4 × `maxFrameBytes`.
   */
  maxBufferedPerPeer?: number
}

/** The remote handler failed; `remoteName` is its error's name (e.g. `NotLeaderError`). */
export class RpcRemoteError extends ConclaveError {
  static override readonly name = 'RpcRemoteError'
  readonly remoteName: string
  constructor(message: string, remoteName: string, options?: ErrorOptions) {
    super(message, 'RpcRemoteError', 'ERR_RPC_REMOTE', options)
    this.remoteName = remoteName
  }
}

/** No answer within the timeout; the request may or may not have run. */
export class RpcTimeoutError extends ConclaveError {
  static override readonly name = 'RpcTimeoutError'
  constructor(message = 'RPC timed out', options?: ErrorOptions) {
    super(message, 'RpcTimeoutError', 'ERR_RPC_TIMEOUT', options)
  }
}

/** The peer could not be reached, or the stream failed before the answer came; the request may have run. */
export class RpcConnectionError extends ConclaveError {
  static override readonly name = 'RpcConnectionError'
  constructor(message = 'RPC connection failed', options?: ErrorOptions) {
    super(message, 'RpcConnectionError', 'ERR_RPC_CONNECTION', options)
  }
}

export interface RpcStats {
  callsStarted: number
  callsSucceeded: number
  callsFailed: number
  requestsServed: number
  /** Streams reset for a malformed frame, either side. */
  resets: number
  /** Inbound streams closed for holding no frame and running nothing for `idleTimeoutMs`. */
  idleClosed: number
  /** Requests refused with `RateLimitedError` (one-way ones dropped) because their peer was over `requestRate`. */
  rateLimited: number
  /** One-way messages handed to a stream (`sendOneWay`). */
  oneWaySent: number
  /** One-way messages that could not be sent (the stream could not be opened, or was closed or backed up). */
  oneWayFailed: number
  /** One-way messages this server ran (counted in `requestsServed` too). */
  oneWayServed: number
  /** Bytes of unread request frames inbound streams hold now (at most `maxBufferedPerPeer` per peer). */
  bufferedBytes: number
  /** The most any one peer holds now. */
  maxBufferedByOnePeer: number
}

interface PendingCall {
  resolve(body: Uint8Array): void
  reject(err: Error): void
  /** Sends the call again on a new stream (the server closed an idle one before reading it); false if not. */
  resend(): boolean
}

interface Channel {
  readonly key: string
  readonly stream: Stream
  readonly writer: FrameWriter
  readonly pending: Map<number, PendingCall>
  nextId: number
}

/** A libp2p service factory: `services: { rpc: rpc() }`. */
export function rpc(init: RpcInit = {}): (components: NetComponents) => Rpc {
  return components => new Rpc(components, init)
}

export class Rpc implements Startable {
  private readonly components: NetComponents
  private readonly log: Logger
  private readonly maxFrameBytes: number
  private readonly defaultTimeoutMs: number
  private readonly dialTimeoutMs: number
  private readonly maxConcurrentRequests: number
  private readonly maxQueueBytes: number
  private readonly maxInboundStreams: number
  private readonly handlers = new Map<string, RpcHandler>()
  private readonly channels = new Map<string, Promise<Channel>>()
  /** The channels of `channels` that are open, so one can be forgotten at once when it closes. */
  private readonly openChannels = new Map<string, Channel>()
  private readonly serverStreams = new Set<Stream>()
  private readonly peerIds = new PeerIdCache()
  private readonly limiter: PeerRateLimiter
  private readonly scheduler: Scheduler
  private readonly budget: InboundBudget
  /** The caller side's frame deadline and buffer bound, for answers. */
  private readonly answerBudget: InboundBudget
  private readonly counters: RpcStats = {
    callsStarted: 0,
    callsSucceeded: 0,
    callsFailed: 0,
    requestsServed: 0,
    resets: 0,
    idleClosed: 0,
    rateLimited: 0,
    oneWaySent: 0,
    oneWayFailed: 0,
    oneWayServed: 0,
    bufferedBytes: 0,
    maxBufferedByOnePeer: 0,
  }
  private started = false
  private shutdown = new AbortController()

  constructor(components: NetComponents, init: RpcInit = {}) {
    this.components = components
    this.log = components.logger.forComponent('conclave:net:rpc')
    this.maxFrameBytes = checkMaxFrameBytes(init.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES)
    this.defaultTimeoutMs = init.defaultTimeoutMs ?? 10_000
    this.dialTimeoutMs = init.dialTimeoutMs ?? 5_000
    this.maxConcurrentRequests = init.maxConcurrentRequests ?? 64
    this.maxQueueBytes = Math.max(init.maxQueueBytes ?? 16 * 1024 * 1024, this.maxFrameBytes + 8)
    this.maxInboundStreams = init.maxInboundStreams ?? 4
    const scheduler = init.scheduler ?? systemScheduler
    this.scheduler = scheduler
    this.limiter = new PeerRateLimiter(checkRateLimit(init.requestRate, DEFAULT_REQUEST_RATE), () =>
      scheduler.now(),
    )
    this.budget = new InboundBudget({
      ...(init.frameTimeoutMs === undefined ? {} : { frameTimeoutMs: init.frameTimeoutMs }),
      ...(init.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: init.idleTimeoutMs }),
      maxBufferedPerPeer: init.maxBufferedPerPeer ?? 4 * this.maxFrameBytes,
      scheduler,
    })
    this.answerBudget = new InboundBudget({
      ...(init.frameTimeoutMs === undefined ? {} : { frameTimeoutMs: init.frameTimeoutMs }),
      maxBufferedPerPeer: init.maxBufferedPerPeer ?? 4 * this.maxFrameBytes,
      scheduler,
    })
  }

  readonly [Symbol.toStringTag] = 'conclave:rpc'

  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    this.shutdown = new AbortController()
    for (const protocol of this.handlers.keys()) await this.handle(protocol)
  }

  /** Unregisters every protocol, resets every stream and fails pending calls with `ClosedError`. */
  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    this.shutdown.abort()
    const reason = new ClosedError('RPC endpoint stopped')
    for (const entry of this.channels.values()) {
      entry.then(
        channel => this.closeChannel(channel, reason),
        () => {},
      )
    }
    this.channels.clear()
    this.openChannels.clear()
    for (const stream of this.serverStreams) stream.abort(reason)
    this.serverStreams.clear()
    for (const protocol of this.handlers.keys()) {
      await this.components.registrar.unhandle(protocol).catch(err => {
        this.log.error('could not unregister %s - %e', protocol, err)
      })
    }
  }

  isStarted(): boolean {
    return this.started
  }

  /** Serves `protocol` with `handler` (now if started, else from `start()`). Replaces an earlier handler. */
  async registerRpc(protocol: string, handler: RpcHandler): Promise<void> {
    this.handlers.set(protocol, handler)
    if (this.started) await this.handle(protocol)
  }

  async unregisterRpc(protocol: string): Promise<void> {
    if (!this.handlers.delete(protocol)) return
    if (this.started) await this.components.registrar.unhandle(protocol)
  }

  /**
   * Sends `request` to `peer` on `protocol` and resolves to the handler's response. Rejects with
   * `RpcRemoteError` (the handler failed), `RpcTimeoutError`, `RpcConnectionError` (unreachable, or the
   * stream failed before the answer), `AbortError` (the signal), `ClosedError` (stopped), `FrameError`
   * (the request is over the frame limit) or `InvalidArgumentError` (a bad timeout). After a timeout, an abort or a connection error the request may
   * still run on the peer.
   */
  callRpc(
    peer: string,
    protocol: string,
    request: Uint8Array,
    options: RpcCallOptions = {},
  ): Promise<Uint8Array> {
    if (!this.started) return Promise.reject(new ClosedError('RPC endpoint stopped'))
    if (options.signal?.aborted === true) return Promise.reject(new AbortError())
    // The envelope adds at most 1 + 8 + 1 + 1 + 5 bytes.
    if (request.byteLength + 16 > this.maxFrameBytes) {
      return Promise.reject(
        new FrameError(`RPC request of ${request.byteLength} bytes is over the frame limit`),
      )
    }
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs
    if (!(timeoutMs > 0 && timeoutMs <= 2 ** 31 - 1)) {
      return Promise.reject(new InvalidArgumentError(`timeoutMs must be in (0, 2^31), got ${timeoutMs}`))
    }
    this.counters.callsStarted++
    return new Promise<Uint8Array>((resolve, reject) => {
      let channel: Channel | undefined
      let id = 0
      let settled = false
      const finish = (err: Error | undefined, body?: Uint8Array): void => {
        if (settled) return
        settled = true
        cancelTimer()
        options.signal?.removeEventListener('abort', onAbort)
        if (channel !== undefined) channel.pending.delete(id)
        if (err === undefined) {
          this.counters.callsSucceeded++
          resolve(body!)
        } else {
          this.counters.callsFailed++
          reject(err)
        }
      }
      const onAbort = (): void => finish(new AbortError())
      const cancelTimer = this.scheduler.after(
        timeoutMs,
        () => finish(new RpcTimeoutError(`No answer from ${peer} on ${protocol} within ${timeoutMs} ms`)),
        { keepAlive: true },
      )
      options.signal?.addEventListener('abort', onAbort, { once: true })
      let resent = false
      const send = (): void => {
        this.getChannel(peer, protocol).then(
          opened => {
            if (settled) return
            channel = opened
            id = opened.nextId++
            let frame: Uint8Array
            try {
              frame = encodeRpcFrame({ kind: 'request', id, body: request }, this.maxFrameBytes)
            } catch (err) {
              finish(err as Error)
              return
            }
            opened.pending.set(id, {
              resolve: body => finish(undefined, body),
              reject: err => finish(err),
              resend: () => {
                // Once: a server that keeps closing streams unread is not idling.
                if (resent || settled) return false
                resent = true
                channel = undefined
                send()
                return true
              },
            })
            if (!opened.writer.write(frame)) {
              opened.pending.delete(id)
              // A stream that closed (its peer stopped or reset it) before this side saw the close sent
              // nothing of this call: it may go once more on a new stream. A backed-up one fails.
              if (opened.stream.writeStatus !== 'writable' && !resent) {
                resent = true
                this.detachChannel(opened)
                channel = undefined
                send()
                return
              }
              finish(new RpcConnectionError(`Stream to ${peer} for ${protocol} is closed or backed up`))
            }
          },
          err => finish(err),
        )
      }
      send()
    })
  }

  /**
   * Sends `message` to `peer` on `protocol` as a one-way request: the handler runs there and no answer comes
   * back. Resolves once the frame is handed to the stream (not when it arrived, nor when it ran: the
   * handler's result and errors stay on the server). Rejects with `RpcConnectionError` (the stream could
   * not be opened within the dial timeout, or it is closed or backed up), `ClosedError` (stopped) or
   * `FrameError` (over the frame limit). A server of an earlier version answers it; the answer is dropped.
   */
  sendOneWay(peer: string, protocol: string, message: Uint8Array): Promise<void> {
    if (!this.started) return Promise.reject(new ClosedError('RPC endpoint stopped'))
    let frame: Uint8Array
    try {
      // Id 0 names no call: the answer an earlier version writes back is dropped on arrival.
      frame = encodeRpcFrame({ kind: 'request', id: 0, body: message, oneWay: true }, this.maxFrameBytes)
    } catch (err) {
      return Promise.reject(err)
    }
    return new Promise<void>((resolve, reject) => {
      let resent = false
      const fail = (err: Error): void => {
        this.counters.oneWayFailed++
        reject(err)
      }
      const send = (): void => {
        this.getChannel(peer, protocol).then(channel => {
          if (channel.writer.write(frame)) {
            this.counters.oneWaySent++
            resolve()
            return
          }
          // As for a call: a stream that closed before this side saw it sent nothing; once more on a new one.
          if (channel.stream.writeStatus !== 'writable' && !resent) {
            resent = true
            this.detachChannel(channel)
            send()
            return
          }
          fail(new RpcConnectionError(`Stream to ${peer} for ${protocol} is closed or backed up`))
        }, fail)
      }
      send()
    })
  }

  stats(): RpcStats {
    return {
      ...this.counters,
      bufferedBytes: this.budget.totalBuffered,
      maxBufferedByOnePeer: this.budget.maxBufferedByOnePeer,
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Calling side

  private getChannel(peer: string, protocol: string): Promise<Channel> {
    const key = `${peer}\n${protocol}`
    let entry = this.channels.get(key)
    if (entry === undefined) {
      entry = this.openChannel(peer, protocol, key)
      this.channels.set(key, entry)
      const opening = entry
      opening.catch(() => {
        if (this.channels.get(key) === opening) this.channels.delete(key)
      })
    }
    return entry
  }

  private async openChannel(peer: string, protocol: string, key: string): Promise<Channel> {
    let stream: Stream
    try {
      stream = await this.components.connectionManager.openStream(this.peerIds.get(peer), protocol, {
        signal: AbortSignal.any([this.shutdown.signal, timeoutSignal(this.scheduler, this.dialTimeoutMs)]),
      })
    } catch (err) {
      if (!this.started) throw new ClosedError('RPC endpoint stopped')
      throw new RpcConnectionError(`Could not open ${protocol} to ${peer}`, { cause: err })
    }
    if (!this.started) {
      stream.abort(new ClosedError('RPC endpoint stopped'))
      throw new ClosedError('RPC endpoint stopped')
    }
    lazyWindowUpdates(stream)
    const channel: Channel = {
      key,
      stream,
      writer: new FrameWriter(stream, this.maxQueueBytes),
      pending: new Map(),
      nextId: 1,
    }
    this.openChannels.set(key, channel)
    const decoder = new FrameDecoder(this.maxFrameBytes)
    const budget = this.answerBudget.watch(peer, stream, err => {
      this.counters.resets++
      this.log.error('resetting %s stream to %s - %e', protocol, peer, err)
    })
    stream.addEventListener('message', evt => {
      decoder.push(evt.data)
      for (;;) {
        let frame: RpcFrame
        try {
          const bytes = decoder.next()
          if (bytes === undefined) {
            // An answer that has started must arrive in full within the frame timeout.
            if (decoder.bufferedBytes > 0 && budget.account(decoder.bufferedBytes)) budget.waiting()
            return
          }
          budget.completed()
          frame = decodeRpcFrame(bytes)
          if (frame.kind === 'request') throw new FrameError('Request frame on the calling side')
        } catch (err) {
          this.counters.resets++
          this.log.error('resetting %s stream to %s - %e', protocol, peer, err)
          this.closeChannel(channel, new RpcConnectionError('Peer sent a malformed frame', { cause: err }))
          return
        }
        const call = channel.pending.get(frame.id)
        if (call === undefined) continue // answered after its timeout
        if (frame.kind === 'response') call.resolve(frame.body)
        else call.reject(new RpcRemoteError(frame.errorMessage, frame.errorName))
      }
    })
    stream.addEventListener('close', evt => {
      budget.close()
      this.detachChannel(channel)
      this.failPending(
        channel,
        new RpcConnectionError(`Stream to ${peer} for ${protocol} closed`, { cause: evt.error }),
      )
    })
    // The server ends its side when the stream was idle: no answer will come on it, and it ran nothing that
    // arrived after, so the calls still waiting go again on a new stream.
    stream.addEventListener('remoteCloseWrite', () => {
      this.detachChannel(channel)
      const calls = [...channel.pending.values()]
      channel.pending.clear()
      const closedErr = new RpcConnectionError(`${peer} closed the ${protocol} stream`)
      for (const call of calls) if (!call.resend()) call.reject(closedErr)
      stream.close().catch(err => stream.abort(err))
    })
    return channel
  }

  private detachChannel(channel: Channel): void {
    // At once, so a call sent again right after gets a new stream.
    if (this.openChannels.get(channel.key) === channel) {
      this.openChannels.delete(channel.key)
      this.channels.delete(channel.key)
      return
    }
    const entry = this.channels.get(channel.key)
    if (entry === undefined) return
    entry.then(
      current => {
        if (current === channel && this.channels.get(channel.key) === entry) this.channels.delete(channel.key)
      },
      () => {},
    )
  }

  private failPending(channel: Channel, err: Error): void {
    const calls = [...channel.pending.values()]
    channel.pending.clear()
    for (const call of calls) call.reject(err)
  }

  private closeChannel(channel: Channel, err: Error): void {
    this.detachChannel(channel)
    this.failPending(channel, err)
    channel.stream.abort(err)
  }

  // -------------------------------------------------------------------------------------------------------
  // Serving side

  /** Registers the stream handler; the RPC handler is looked up per request, so re-registering swaps it. */
  private async handle(protocol: string): Promise<void> {
    await this.components.registrar.handle(
      protocol,
      (stream, connection) => this.serve(protocol, stream, connection),
      {
        maxInboundStreams: this.maxInboundStreams,
        maxOutboundStreams: 2,
        force: true,
      },
    )
  }

  private serve(protocol: string, stream: Stream, connection: Connection): void {
    if (!this.started) {
      stream.abort(new ClosedError('RPC endpoint stopped'))
      return
    }
    const from = connection.remotePeer.toString()
    const limitKey = `${from}\n${protocol}`
    lazyWindowUpdates(stream)
    const writer = new FrameWriter(stream, this.maxQueueBytes)
    const decoder = new FrameDecoder(this.maxFrameBytes)
    let running = 0
    let callerDone = false
    /** Closed for idleness: what arrives after is not run (the caller sends it again on a new stream). */
    let idleClosed = false
    this.serverStreams.add(stream)
    // Aborts when the stream closes, so handlers that wait (long polls) give back what they hold.
    const closed = new AbortController()
    const budget = this.budget.watch(
      from,
      stream,
      err => {
        this.counters.resets++
        this.log('resetting %s stream from %s - %e', protocol, from, err)
      },
      () => {
        idleClosed = true
        this.counters.idleClosed++
        stream.close().catch(err => stream.abort(err))
      },
    )
    const idleIfQuiet = (): void => {
      if (running === 0 && decoder.bufferedBytes === 0) budget.idle()
    }

    const pump = (): void => {
      while (running < this.maxConcurrentRequests) {
        let frame: RpcFrame
        try {
          const bytes = decoder.next()
          if (bytes === undefined) {
            if (decoder.bufferedBytes > 0) budget.waiting()
            return
          }
          budget.completed()
          frame = decodeRpcFrame(bytes)
          if (frame.kind !== 'request') throw new FrameError('Answer frame on the serving side')
        } catch (err) {
          this.counters.resets++
          this.log.error('resetting %s stream from %s - %e', protocol, from, err)
          stream.abort(err instanceof Error ? err : new FrameError(String(err)))
          return
        }
        const oneWay = frame.oneWay === true
        if (!this.limiter.take(limitKey)) {
          if (oneWay) {
            // Nobody waits for an answer: dropped, as an overloaded datagram would be.
            this.counters.rateLimited++
            continue
          }
          if (!refuse(frame.id)) return
          continue
        }
        running++
        run(frame.id, frame.body, oneWay)
      }
      if (stream.readStatus === 'readable') stream.pause()
    }

    // Over the rate: answered without running the handler, and without `answer()`, which would call
    // `pump()` again (a burst of refusals must not nest calls).
    const refuse = (id: number): boolean => {
      this.counters.rateLimited++
      const refusal = encodeRpcFrame({
        kind: 'error',
        id,
        errorMessage: `Over the rate of ${this.limiter.perSecond} requests/s on ${protocol}: retry later`,
        errorName: RATE_LIMITED_ERROR,
      })
      if (writer.write(refusal)) return true
      if (stream.writeStatus === 'writable') {
        stream.abort(new Error(`The caller is not reading ${protocol} answers`))
      }
      return false
    }

    const run = (id: number, body: Uint8Array, oneWay: boolean): void => {
      const handler = this.handlers.get(protocol)
      let result: Promise<Uint8Array>
      try {
        if (handler === undefined) throw new Error(`No handler for ${protocol}`)
        result = Promise.resolve(handler(body, from, closed.signal))
      } catch (err) {
        result = Promise.reject(err)
      }
      if (oneWay) {
        this.counters.oneWayServed++
        result.then(
          () => answer(undefined),
          (err: unknown) => {
            // Nobody to tell: the handler's refusal stays here.
            this.log('one-way %s message from %s failed - %e', protocol, from, err)
            answer(undefined)
          },
        )
        return
      }
      result.then(
        response => answer({ kind: 'response', id, body: response }),
        (err: unknown) =>
          answer({
            kind: 'error',
            id,
            errorMessage: err instanceof Error ? err.message : String(err),
            errorName: err instanceof Error ? err.name : 'Error',
          }),
      )
    }

    /** A handler finished: its answer (none for a one-way message) goes out and the stream reads on. */
    const answer = (frame: RpcFrame | undefined): void => {
      running--
      this.counters.requestsServed++
      if (stream.status !== 'open') return
      if (frame !== undefined && !write(frame)) return
      if (callerDone && running === 0) {
        stream.close().catch(err => stream.abort(err))
        return
      }
      if (stream.readStatus === 'paused') stream.resume()
      pump()
      idleIfQuiet()
    }

    /** Queues an answer; false (the stream is reset) if the caller does not read them. */
    const write = (frame: RpcFrame): boolean => {
      let bytes: Uint8Array
      try {
        bytes = encodeRpcFrame(frame, this.maxFrameBytes)
      } catch (err) {
        bytes = encodeRpcFrame({
          kind: 'error',
          id: frame.id,
          errorMessage: `Response could not be sent: ${(err as Error).message}`,
          errorName: 'FrameError',
        })
      }
      if (writer.write(bytes)) return true
      if (stream.writeStatus === 'writable') {
        stream.abort(new Error(`The caller is not reading ${protocol} answers`))
      }
      return false
    }

    stream.addEventListener('message', evt => {
      if (idleClosed) return
      budget.busy()
      decoder.push(evt.data)
      pump()
      budget.account(decoder.bufferedBytes)
      idleIfQuiet()
    })
    stream.addEventListener('remoteCloseWrite', () => {
      callerDone = true
      if (running === 0) stream.close().catch(err => stream.abort(err))
    })
    stream.addEventListener('close', () => {
      this.serverStreams.delete(stream)
      budget.close()
      closed.abort()
    })
  }
}
