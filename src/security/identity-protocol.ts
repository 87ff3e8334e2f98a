/**
 * `/conclave/identity/1.0.0`: two peers prove their SPIFFE identities to each other over one stream.
 *
 * ```
 * initiator                                           responder
 *   { nonce: nI }                              ->
 *                                              <-  { nonce: nR, certificates: chainR, signature: sigR(idR, nI) }
 *   verify chainR, and sigR against the
 *   connection's remote peer id and nI
 *   { certificates: chainI, signature: sigI(idI, nR) } ->
 *                                                  verify chainI, and sigI against the
 *                                                  connection's remote peer id and nR
 *                                              <-  {} (accepted) or { error }
 * ```
 *
 * A side that refuses the other's identity sends `{ error }` and ends the stream. Either side may start
 * an exchange; one exchange authenticates both. The verified SPIFFE ID of each peer is cached until its
 * SVID chain expires or the last connection to the peer closes; a failure is cached for `retryAfterMs`, so
 * a refused peer that keeps sending costs one exchange per window, not one per message.
 *
 * Noise has already authenticated the peer id of the connection; the proof (`proof.ts`) binds the SVID to
 * that peer id, so an SVID is worth nothing to a peer that does not hold its private key.
 */

import type {
  AbortOptions,
  ComponentLogger,
  Connection,
  Libp2p,
  Logger,
  PeerId,
  Startable,
  Stream,
} from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { type NetComponents, type NetConnectionManager, PeerIdCache } from '../net/components.ts'
import type { Cancel, Scheduler } from '../time/scheduler.ts'
import { timeoutSignal } from '../time/sleep.ts'
import { systemScheduler } from '../time/system-scheduler.ts'
import { IdentityError, SvidError } from './errors.ts'
import {
  decodeIdentityMessage,
  encodeIdentityMessage,
  type IdentityMessage,
  MAX_IDENTITY_MESSAGE_BYTES,
} from './identity-codec.ts'
import { NONCE_BYTES, signProof, verifyProof } from './proof.ts'
import { type TrustBundleSet, verifySvid, type X509Svid } from './svid.ts'

export const IDENTITY_PROTOCOL = '/conclave/identity/1.0.0'

/** Who a peer proved to be. */
export interface PeerIdentity {
  peerId: string
  spiffeId: string
  trustDomain: string
  /** When the proof stops counting (ms since epoch): the earliest expiry on the peer's SVID path. */
  expiresAt: number
  /** When the exchange succeeded (ms since epoch). */
  verifiedAt: number
}

/** libp2p's events the service listens to: connection opens (to authenticate early) and peer disconnects. */
export type IdentityEvents = Pick<Libp2p, 'addEventListener' | 'removeEventListener'>

export interface IdentityComponents extends NetComponents {
  peerId: PeerId
  logger: ComponentLogger
  /** libp2p's connection manager; `closeConnections` is needed for `closeUnauthenticated`. */
  connectionManager: NetConnectionManager & { closeConnections?(peer: PeerId): Promise<void> }
  /** libp2p's `components.events`. Without it, identities expire only with their SVIDs. */
  events?: IdentityEvents
}

export interface IdentityInit {
  /** This agent's SVID. */
  svid: X509Svid
  /** CA certificates trusted per trust domain. */
  bundles: TrustBundleSet
  /** Wall clock in ms (certificate validity is wall-clock time). Default: the scheduler's `wallNow`. */
  now?: () => number
  /** Clocks and timers (exchange timeouts, retry windows). Default `systemScheduler`. */
  scheduler?: Scheduler
  /** Longest an exchange may take. Default 5 s. */
  timeoutMs?: number
  /** How long a failed exchange is remembered before the next attempt. Default 1 s. */
  retryAfterMs?: number
  /** Authenticate each peer as soon as this node dials it, rather than at its first conclave message. Default true. */
  eager?: boolean
  /**
   * Close every connection of a peer whose identity exchange fails, and authenticate peers that connect
   * to this node (if they have not started an exchange within `timeoutMs`), so that a peer without a
   * valid SVID cannot stay connected (and, for instance, read gossip). Default false: a libp2p node that
   * also serves peers that are not conclave agents must not close their connections.
   */
  closeUnauthenticated?: boolean
}

interface Failure {
  error: IdentityError
  /** The scheduler's monotonic ms. */
  until: number
}

/** Runs the identity protocol and caches who each peer is. A libp2p `Startable`. */
export class IdentityService implements Startable {
  readonly protocol = IDENTITY_PROTOCOL
  private readonly components: IdentityComponents
  private readonly log: Logger
  private bundles: TrustBundleSet
  private readonly now: () => number
  private readonly scheduler: Scheduler
  private readonly timeoutMs: number
  private readonly retryAfterMs: number
  private readonly eager: boolean
  private readonly closeUnauthenticated: boolean
  private readonly graceTimers = new Set<Cancel>()
  private readonly selfId: string
  private svid: X509Svid
  private chainDer: Uint8Array[]
  private readonly identities = new Map<string, PeerIdentity>()
  private readonly failures = new Map<string, Failure>()
  private readonly outbound = new Map<string, Promise<PeerIdentity>>()
  private readonly inbound = new Map<string, Promise<void>>()
  private readonly streams = new Set<Stream>()
  private readonly peerIds = new PeerIdCache()
  private readonly listeners = new Set<(identity: PeerIdentity) => void>()
  private readonly failureListeners = new Set<(peer: string, error: IdentityError) => void>()
  /** Peers that refused this node's identity, why, and until when (monotonic ms) that is remembered. */
  private readonly refusals = new Map<string, { reason: string; until: number }>()
  private started = false
  private shutdown = new AbortController()

  constructor(components: IdentityComponents, init: IdentityInit) {
    this.components = components
    this.log = components.logger.forComponent('conclave:identity')
    this.bundles = init.bundles
    const scheduler = init.scheduler ?? systemScheduler
    this.scheduler = scheduler
    this.now = init.now ?? (() => scheduler.wallNow())
    this.timeoutMs = init.timeoutMs ?? 5_000
    this.retryAfterMs = init.retryAfterMs ?? 1_000
    this.eager = init.eager ?? true
    this.closeUnauthenticated = init.closeUnauthenticated ?? false
    this.selfId = components.peerId.toString()
    this.svid = init.svid
    this.chainDer = derChain(init.svid)
  }

  readonly [Symbol.toStringTag] = 'conclave:identity'

  /** This agent's SPIFFE ID. */
  get spiffeId(): string {
    return this.svid.spiffeId.id
  }

  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    this.shutdown = new AbortController()
    await this.components.registrar.handle(this.protocol, this.handleStream, {
      maxInboundStreams: 2,
      maxOutboundStreams: 2,
    })
    this.components.events?.addEventListener('peer:disconnect', this.onDisconnect)
    if (this.eager || this.closeUnauthenticated) {
      this.components.events?.addEventListener('connection:open', this.onConnection)
    }
  }

  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    this.shutdown.abort()
    this.components.events?.removeEventListener('peer:disconnect', this.onDisconnect)
    this.components.events?.removeEventListener('connection:open', this.onConnection)
    for (const cancel of this.graceTimers) cancel()
    this.graceTimers.clear()
    for (const stream of this.streams) stream.abort(new Error('Identity service stopped'))
    this.streams.clear()
    this.identities.clear()
    this.failures.clear()
    this.refusals.clear()
    await this.components.registrar.unhandle(this.protocol).catch(err => {
      this.log.error('could not unregister %s - %e', this.protocol, err)
    })
  }

  isStarted(): boolean {
    return this.started
  }

  /**
   * Uses `svid` (and `bundles`, if given) from now on: a rotation. Peers already authenticated keep their
   * verdicts until `refresh` or their SVIDs' expiry.
   */
  setSvid(svid: X509Svid, bundles?: TrustBundleSet): void {
    this.svid = svid
    this.chainDer = derChain(svid)
    if (bundles !== undefined) this.bundles = bundles
  }

  /**
   * Runs a new exchange with every peer whose identity is known, so that each learns this node's current
   * SVID (and its later expiry) now, and we theirs, rather than when the old one expires. A failed refresh
   * is only logged: the identity known before stays until it expires, and the next exchange then decides.
   */
  async refresh(): Promise<void> {
    const peers = [...this.identities.keys()]
    await Promise.all(
      peers.map(async peer => {
        try {
          await this.initiate(peer, true)
        } catch (err) {
          this.log('refreshing the identity exchange with %s failed - %e', peer, err)
        }
      }),
    )
  }

  /** The identity `peer` proved, if it did and it has not expired. */
  identity(peer: string): PeerIdentity | undefined {
    const known = this.identities.get(peer)
    if (known === undefined) return undefined
    if (this.now() >= known.expiresAt) {
      this.identities.delete(peer)
      return undefined
    }
    return known
  }

  /** The last failure with `peer`, while it is remembered (`retryAfterMs`). */
  failure(peer: string): IdentityError | undefined {
    const failed = this.failures.get(peer)
    if (failed === undefined) return undefined
    if (this.scheduler.now() >= failed.until) {
      this.failures.delete(peer)
      return undefined
    }
    return failed.error
  }

  /** Why `peer` refused this node's identity in an exchange, while that is remembered (`retryAfterMs`). */
  refusal(peer: string): string | undefined {
    const refused = this.refusals.get(peer)
    if (refused === undefined) return undefined
    if (this.scheduler.now() >= refused.until) {
      this.refusals.delete(peer)
      return undefined
    }
    return refused.reason
  }

  /** Forgets what is known of `peer`: the next `authenticate` runs a new exchange. */
  forget(peer: string): void {
    this.identities.delete(peer)
    this.failures.delete(peer)
    this.refusals.delete(peer)
  }

  /** Calls `listener` with every identity newly verified. Returns a function that removes it. */
  onIdentity(listener: (identity: PeerIdentity) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /**
   * Calls `listener` with every failed exchange (a refused SVID or proof, a timeout, an unreachable peer),
   * for an audit log. Returns a function that removes it.
   */
  onFailure(listener: (peer: string, error: IdentityError) => void): () => void {
    this.failureListeners.add(listener)
    return () => this.failureListeners.delete(listener)
  }

  /**
   * Who `peer` is: from the cache, from an exchange under way (either direction), or from a new exchange
   * this node starts. Rejects with `IdentityError` (the reason says why), also while a recent failure is
   * remembered. The signal abandons the wait, not a shared exchange.
   */
  async authenticate(peer: string, options: AbortOptions = {}): Promise<PeerIdentity> {
    const known = this.identity(peer)
    if (known !== undefined) return known
    const failed = this.failure(peer)
    if (failed !== undefined) throw failed
    if (!this.started) throw new IdentityError('unreachable', 'Identity service is stopped')
    const answering = this.inbound.get(peer)
    if (answering !== undefined) {
      await race(answering, options.signal)
      const learned = this.identity(peer)
      if (learned !== undefined) return learned
      const refused = this.failure(peer)
      if (refused !== undefined) throw refused
    }
    let pending = this.outbound.get(peer)
    if (pending === undefined) {
      pending = this.initiate(peer).finally(() => this.outbound.delete(peer))
      this.outbound.set(peer, pending)
    }
    return race(pending, options.signal)
  }

  // ---------- initiator ----------

  /** With `refresh`, a failure is returned to the caller only: the peer's known identity stands. */
  private async initiate(peer: string, refresh = false): Promise<PeerIdentity> {
    const signal = AbortSignal.any([this.shutdown.signal, timeoutSignal(this.scheduler, this.timeoutMs)])
    let stream: Stream
    try {
      stream = await this.components.connectionManager.openStream(this.peerIds.get(peer), this.protocol, {
        signal,
      })
    } catch (cause) {
      const error = new IdentityError('unreachable', `Could not open ${this.protocol} to ${peer}`, { cause })
      throw refresh ? error : this.fail(peer, error)
    }
    this.streams.add(stream)
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_IDENTITY_MESSAGE_BYTES })
      const nonce = randomNonce()
      await lp.write(encodeIdentityMessage({ nonce, certificates: [] }), { signal })
      const reply = await readMessage(lp, signal)
      if (reply.error !== undefined) {
        throw new IdentityError('refused', `${peer} refused the exchange: ${reply.error}`)
      }
      let identity: PeerIdentity
      try {
        identity = this.verify(peer, reply, nonce)
      } catch (err) {
        await this.refuse(lp, err as IdentityError, signal)
        throw err
      }
      const theirNonce = checkNonce(reply.nonce)
      await lp.write(
        encodeIdentityMessage({
          certificates: this.chainDer,
          signature: signProof(this.svid.privateKey, this.selfId, theirNonce),
        }),
        { signal },
      )
      const verdict = await readMessage(lp, signal)
      // Their verdict on us does not change who they are; it only means they will not talk to us.
      if (verdict.error !== undefined) this.refusedBy(peer, verdict.error)
      await stream.close({ signal }).catch(err => stream.abort(err))
      this.accept(identity)
      return identity
    } catch (err) {
      stream.abort(err as Error)
      const error = asIdentityError(err, peer, signal)
      throw refresh ? error : this.fail(peer, error)
    } finally {
      this.streams.delete(stream)
    }
  }

  // ---------- responder ----------

  private readonly handleStream = (stream: Stream, connection: Connection): void => {
    if (!this.started) {
      stream.abort(new Error('Identity service stopped'))
      return
    }
    const peer = connection.remotePeer.toString()
    this.streams.add(stream)
    const done = this.respond(peer, stream).finally(() => {
      this.streams.delete(stream)
      if (this.inbound.get(peer) === done) this.inbound.delete(peer)
    })
    this.inbound.set(peer, done)
  }

  /** Never rejects: the outcome lands in the caches. */
  private async respond(peer: string, stream: Stream): Promise<void> {
    const signal = AbortSignal.any([this.shutdown.signal, timeoutSignal(this.scheduler, this.timeoutMs)])
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_IDENTITY_MESSAGE_BYTES })
      const hello = await readMessage(lp, signal)
      const theirNonce = checkNonce(hello.nonce)
      const nonce = randomNonce()
      await lp.write(
        encodeIdentityMessage({
          nonce,
          certificates: this.chainDer,
          signature: signProof(this.svid.privateKey, this.selfId, theirNonce),
        }),
        { signal },
      )
      const proof = await readMessage(lp, signal)
      if (proof.error !== undefined) {
        this.refusedBy(peer, proof.error)
        await stream.close({ signal }).catch(err => stream.abort(err))
        return
      }
      let identity: PeerIdentity
      try {
        identity = this.verify(peer, proof, nonce)
      } catch (err) {
        // The reason first: closing the peer's connections (`fail`) could cut it off. They are closed once
        // the peer has read it (it ends the stream then): closed while it still sends, they are reset, and
        // its transport drops what it has not read.
        await this.refuse(lp, err as IdentityError, signal)
        this.fail(
          peer,
          err as IdentityError,
          lp.read({ signal }).catch(() => {}),
        )
        await stream.close({ signal }).catch(closeErr => stream.abort(closeErr))
        return
      }
      this.accept(identity)
      await lp.write(encodeIdentityMessage({ certificates: [] }), { signal })
      await stream.close({ signal }).catch(err => stream.abort(err))
    } catch (err) {
      stream.abort(err as Error)
      this.fail(peer, asIdentityError(err, peer, signal))
    }
  }

  // ---------- both sides ----------

  /** Checks the peer's chain and its proof for `peer` (the connection's remote) and our `nonce`. */
  private verify(peer: string, message: IdentityMessage, nonce: Uint8Array): PeerIdentity {
    if (message.certificates.length === 0 || message.signature === undefined) {
      throw new IdentityError('protocol', `${peer} sent no SVID or no proof`)
    }
    const now = this.now()
    let verified: ReturnType<typeof verifySvid>
    try {
      verified = verifySvid(message.certificates, this.bundles, now)
    } catch (err) {
      if (err instanceof SvidError) {
        throw new IdentityError('svid', `${peer} presented an invalid SVID (${err.reason}): ${err.message}`, {
          cause: err,
        })
      }
      throw err
    }
    const leaf = verified.path[0]
    if (!verifyProof(leaf.publicKey, peer, nonce, message.signature)) {
      throw new IdentityError(
        'proof',
        `${peer} did not prove it holds the key of ${verified.spiffeId.id} (a replayed or forged proof)`,
      )
    }
    return {
      peerId: peer,
      spiffeId: verified.spiffeId.id,
      trustDomain: verified.spiffeId.trustDomain,
      expiresAt: verified.expiresAt,
      verifiedAt: now,
    }
  }

  private accept(identity: PeerIdentity): void {
    this.failures.delete(identity.peerId)
    this.identities.set(identity.peerId, identity)
    this.log('%s is %s', identity.peerId, identity.spiffeId)
    for (const listener of this.listeners) {
      try {
        listener(identity)
      } catch (err) {
        this.log.error('identity listener failed - %e', err)
      }
    }
  }

  /**
   * Records a failure with `peer` (unless stopping), closes its connections if so configured (once
   * `closeAfter` settles), and returns the error, for `throw this.fail(...)`.
   */
  private fail(peer: string, error: IdentityError, closeAfter?: Promise<unknown>): IdentityError {
    if (!this.started) return error
    this.identities.delete(peer)
    const now = this.scheduler.now()
    // Failures of peers that never come back are only dropped here: keep the map bounded.
    if (this.failures.size >= 1_000) {
      for (const [id, failed] of this.failures) if (failed.until <= now) this.failures.delete(id)
    }
    this.failures.set(peer, { error, until: now + this.retryAfterMs })
    this.log.error('identity of %s not established (%s): %s', peer, error.reason, error.message)
    for (const listener of this.failureListeners) {
      try {
        listener(peer, error)
      } catch (err) {
        this.log.error('identity failure listener failed - %e', err)
      }
    }
    if (this.closeUnauthenticated) {
      void Promise.resolve(closeAfter)
        .then(() => this.components.connectionManager.closeConnections?.(this.peerIds.get(peer)))
        .catch(err => this.log.error('could not close the connections of %s - %e', peer, err))
    }
    return error
  }

  /** `peer` refused our identity: it will not talk to us, whatever we think of it. */
  private refusedBy(peer: string, reason: string): void {
    this.log.error('%s refused our identity: %s', peer, reason)
    if (this.refusals.size >= 1_000) this.refusals.clear()
    this.refusals.set(peer, { reason, until: this.scheduler.now() + this.retryAfterMs })
  }

  private async refuse(
    lp: ReturnType<typeof lpStream>,
    error: IdentityError,
    signal: AbortSignal,
  ): Promise<void> {
    try {
      await lp.write(
        encodeIdentityMessage({ certificates: [], error: `${error.reason}: ${error.message}` }),
        {
          signal,
        },
      )
    } catch {
      // The refusal is a courtesy; the stream is ended either way.
    }
  }

  /** A new connection means a new proof; a remembered failure still holds until it expires. */
  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    this.identities.delete(evt.detail.toString())
  }

  private readonly onConnection = (evt: CustomEvent<Connection>): void => {
    const connection = evt.detail
    const peer = connection.remotePeer.toString()
    if (connection.direction === 'outbound') {
      if (this.eager) this.authenticateInBackground(peer)
      return
    }
    if (!this.closeUnauthenticated) return
    // The dialer normally starts the exchange; give it that long before asking ourselves.
    const cancel = this.scheduler.after(this.timeoutMs, () => {
      this.graceTimers.delete(cancel)
      if (this.identity(peer) === undefined && connection.status === 'open')
        this.authenticateInBackground(peer)
    })
    this.graceTimers.add(cancel)
  }

  private authenticateInBackground(peer: string): void {
    this.authenticate(peer).catch(err => this.log('authentication of %s failed - %e', peer, err))
  }
}

/** A libp2p service factory: `services: { identity: identityService({ svid, bundles }) }`. */
export function identityService(init: IdentityInit): (components: IdentityComponents) => IdentityService {
  return components => new IdentityService(components, init)
}

function derChain(svid: X509Svid): Uint8Array[] {
  return svid.chain.map(cert => new Uint8Array(cert.raw))
}

function randomNonce(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(NONCE_BYTES))
}

function checkNonce(nonce: Uint8Array | undefined): Uint8Array {
  if (nonce === undefined || nonce.byteLength !== NONCE_BYTES) {
    throw new IdentityError('protocol', `Expected a nonce of ${NONCE_BYTES} bytes`)
  }
  return nonce
}

async function readMessage(lp: ReturnType<typeof lpStream>, signal: AbortSignal): Promise<IdentityMessage> {
  const bytes = await lp.read({ signal })
  try {
    return decodeIdentityMessage(bytes.subarray())
  } catch (cause) {
    throw new IdentityError('protocol', 'Malformed identity message', { cause })
  }
}

function asIdentityError(err: unknown, peer: string, signal: AbortSignal): IdentityError {
  if (err instanceof IdentityError) return err
  if (signal.aborted) {
    return new IdentityError('timeout', `The identity exchange with ${peer} did not finish in time`, {
      cause: err,
    })
  }
  return new IdentityError(
    'protocol',
    `The identity exchange with ${peer} failed: ${(err as Error).message}`,
    {
      cause: err,
    },
  )
}

function race<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      value => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      err => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      },
    )
  })
}
