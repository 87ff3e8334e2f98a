/**
 * A client's line to a cluster: a bare libp2p node (no conclave service: a client is not a member) that
 * dials one agent and calls the client protocol on it. Given several agents (`--peer` repeated or a comma
 * list, or `CONCLAVE_PEER=a,b,c`), it uses the first that answers, and moves on to the next when that one
 * goes away during a read (a write that lost its agent may have taken effect: it is reported, not repeated). With an SVID (`--svid`, `--svid-key`,
 * `--trust-bundle`), the node also runs the identity protocol: the agent checks who the client is and its
 * policy decides what the client may do, and the client checks the agent's SVID against its bundle.
 */

import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { CLIENT_PROTOCOL, type ClientOp, type ClientOps } from '../agent/api/client-protocol.ts'
import { UnauthorizedError } from '../errors.ts'
import type { Rpc, RpcRemoteError } from '../net/rpc.ts'
import type { IdentityError } from '../security/errors.ts'
import type { IdentityService } from '../security/identity-protocol.ts'
import { checkAgentAddress } from './addresses.ts'
import type { OptionSpec, ParsedArgs } from './args.ts'
import { UsageError } from './args.ts'
import { identityOptions, loadIdentity, readIdentityFiles } from './identity.ts'
import { CliError } from './output.ts'

/** The options every client command takes. */
export const CLIENT_OPTIONS: OptionSpec[] = [
  {
    name: 'peer',
    kind: 'list',
    placeholder: '<multiaddr>',
    description:
      'an agent of the cluster; repeatable or comma-separated, tried in turn (default: env CONCLAVE_PEER)',
  },
  {
    name: 'timeout',
    kind: 'duration',
    placeholder: '<duration>',
    description: 'how long one request may take (default 15s)',
  },
  {
    name: 'psk',
    kind: 'string',
    placeholder: '<file>',
    description: "the cluster's private network key file, if it has one (default: env CONCLAVE_PSK)",
  },
  ...identityOptions('client'),
  { name: 'json', kind: 'boolean', description: 'print JSON for scripts' },
]

const DEFAULT_TIMEOUT_MS = 15_000

export interface CallOptions {
  /** The long poll's wait, added to the request timeout. */
  waitMs?: number
  /** Instead of the connection's timeout. */
  timeoutMs?: number
}

type ClientServices = { rpc: Rpc; identity?: IdentityService }

/** Operations that change nothing: repeated on another agent when the first one goes away mid-call. */
const READS: ReadonlySet<ClientOp> = new Set<ClientOp>([
  'status',
  'kv.get',
  'kv.events',
  'task.status',
  'task.list',
  'task.events',
])

/** Where a failed call happened: a failover is tried for a lost agent only, never for its answer. */
const REMOTE = Symbol('remote')

/** What a command hears when its connection moves to another agent. */
export type FailoverListener = (from: string, to: string, reason: string) => void

/** The agents `--peer` or `CONCLAVE_PEER` name, each checked; a usage error if there are none. */
export function peerAddresses(args: ParsedArgs): string[] {
  const given = (args.options.peer as string[] | undefined) ?? []
  const fromEnv = (process.env.CONCLAVE_PEER ?? '')
    .split(',')
    .map(address => address.trim())
    .filter(address => address !== '')
  const addresses = given.length > 0 ? given : fromEnv
  if (addresses.length === 0) {
    throw new UsageError('no agent to talk to: pass --peer <multiaddr> or set CONCLAVE_PEER')
  }
  const option = given.length > 0 ? 'peer' : 'peer (CONCLAVE_PEER)'
  for (const address of addresses) checkAgentAddress(option, address, false)
  return [...new Set(addresses)]
}

export class Connection {
  readonly timeoutMs: number
  /** Told when the connection moves to another agent; by default a line on stderr. */
  onFailover: FailoverListener = (from, to, reason) => {
    process.stderr.write(`conclave: lost ${from} (${reason}); continuing with ${to}\n`)
  }
  private readonly node: Libp2p<ClientServices>
  private readonly addresses: readonly string[]
  /** Index in `addresses` of the agent in use. */
  private current = 0
  private peerId = ''
  /** The protocols each agent announced (libp2p identify), to tell why one closed the connection. */
  private readonly announced = new Map<string, string[]>()
  private announcedWaiters: (() => void)[] = []
  private readonly encoder = new TextEncoder()
  private readonly decoder = new TextDecoder()

  private constructor(node: Libp2p<ClientServices>, addresses: readonly string[], timeoutMs: number) {
    this.node = node
    this.addresses = addresses
    this.timeoutMs = timeoutMs
    node.addEventListener('peer:identify', event => {
      this.announced.set(event.detail.peerId.toString(), event.detail.protocols)
      for (const wake of this.announcedWaiters.splice(0)) wake()
    })
  }

  /** The peer id of the agent in use. */
  get peer(): string {
    return this.peerId
  }

  /** The address of the agent in use. */
  get address(): string {
    return this.addresses[this.current]
  }

  /**
   * Dials the first agent that answers of those `--peer` or `CONCLAVE_PEER` name, and proves the client's
   * SVID to it if it has one.
   */
  static async open(args: ParsedArgs): Promise<Connection> {
    const addresses = peerAddresses(args)
    const timeoutMs = (args.options.timeout as number | undefined) ?? DEFAULT_TIMEOUT_MS
    if (timeoutMs <= 0) throw new UsageError('--timeout must be above 0')
    const identityFiles = readIdentityFiles(args, true)
    const identity = identityFiles === undefined ? undefined : loadIdentity(identityFiles)
    // Loaded here, not at the top: `--help` and usage errors need not load libp2p.
    const { createConclaveLibp2p } = await import('../net/libp2p-node.ts')
    const { rpc } = await import('../net/rpc.ts')
    const { identityService } = await import('../security/identity-protocol.ts')
    const psk = (args.options.psk as string | undefined) ?? (process.env.CONCLAVE_PSK || undefined)
    const node = (await createConclaveLibp2p({
      listen: [],
      ...(psk === undefined ? {} : { psk }),
      services: {
        rpc: rpc({ defaultTimeoutMs: timeoutMs }),
        // Not eager: `open` runs the exchange itself, to report its outcome.
        ...(identity === undefined
          ? {}
          : { identity: identityService({ ...identity, timeoutMs, eager: false }) }),
      },
    })) as Libp2p<ClientServices>
    const connection = new Connection(node, addresses, timeoutMs)
    try {
      await connection.connect(0)
      return connection
    } catch (err) {
      await Promise.resolve(node.stop()).catch(() => {})
      throw err
    }
  }

  /**
   * Connects to the first agent that answers, trying the addresses in turn from `start`. A refusal of this
   * client's identity is final: another agent of the cluster would refuse it as well.
   */
  private async connect(start: number, skip?: number): Promise<void> {
    const failures: string[] = []
    for (let step = 0; step < this.addresses.length; step++) {
      const index = (start + step) % this.addresses.length
      if (index === skip) continue
      const address = this.addresses[index]
      let peer: string
      try {
        const target = multiaddr(address)
        peer = (
          await this.node.dial(target, { signal: AbortSignal.timeout(this.timeoutMs) })
        ).remotePeer.toString()
      } catch (err) {
        failures.push(`${address}: ${(err as Error).message}`)
        continue
      }
      if (this.node.services.identity !== undefined)
        await proveIdentity(this.node.services.identity, peer, address)
      this.current = index
      this.peerId = peer
      return
    }
    throw new CliError('ConnectionError', `could not reach ${failures.join('; ')}`)
  }

  /**
   * Runs `op` on the agent; a failure there is rethrown under its own name (e.g. `NoLeaderError`). A read
   * whose agent went away is run again on the next agent that answers.
   */
  async call<Op extends ClientOp>(
    op: Op,
    args: ClientOps[Op]['args'],
    options: CallOptions = {},
  ): Promise<ClientOps[Op]['result']> {
    for (let failovers = 0; ; failovers++) {
      try {
        return await this.callOnce(op, args, options)
      } catch (err) {
        const lost = (err as { [REMOTE]?: boolean })[REMOTE] !== true && !(err instanceof UnauthorizedError)
        if (!lost || !READS.has(op) || this.addresses.length < 2 || failovers >= this.addresses.length)
          throw err
        const from = this.address
        const reason = (err as Error).message
        await this.connect(this.current + 1, this.current)
        this.onFailover(from, this.address, reason)
      }
    }
  }

  /**
   * Moves to the next agent that answers (after the one in use went away, as its caller tells): for the
   * callers that decide themselves what to do after a lost write, as a worker does.
   */
  async moveOn(reason: string): Promise<void> {
    const from = this.address
    await this.connect(this.current + 1, this.addresses.length < 2 ? undefined : this.current)
    if (this.address !== from) this.onFailover(from, this.address, reason)
  }

  private async callOnce<Op extends ClientOp>(
    op: Op,
    args: ClientOps[Op]['args'],
    options: CallOptions,
  ): Promise<ClientOps[Op]['result']> {
    const request = this.encoder.encode(JSON.stringify({ op, args }))
    const timeoutMs = (options.timeoutMs ?? this.timeoutMs) + (options.waitMs ?? 0)
    let response: Uint8Array
    try {
      response = await this.node.services.rpc.callRpc(this.peer, CLIENT_PROTOCOL, request, { timeoutMs })
    } catch (err) {
      if ((err as Error).name === 'RpcRemoteError') {
        const remoteName = (err as RpcRemoteError).remoteName
        const hint = remoteName === 'UnauthorizedError' ? this.identityHint() : ''
        throw Object.assign(new CliError(remoteName, `${(err as Error).message}${hint}`), { [REMOTE]: true })
      }
      throw (await this.refusal()) ?? err
    }
    return JSON.parse(this.decoder.decode(response)) as ClientOps[Op]['result']
  }

  /**
   * Why the agent dropped this client, when it is a refusal: an agent with SPIFFE identities closes the
   * connection of a peer without a valid SVID, often before its answer gets out.
   */
  private async refusal(): Promise<UnauthorizedError | undefined> {
    const identity = this.node.services.identity
    if (identity !== undefined) {
      const reason = identity.refusal(this.peer)
      if (reason === undefined) return undefined
      return new UnauthorizedError(
        `${this.peer} refused this client's identity (${identity.spiffeId}): ${reason}`,
      )
    }
    const protocols = await this.protocolsOf(this.peer, Math.min(1_000, this.timeoutMs))
    const { IDENTITY_PROTOCOL } = await import('../security/identity-protocol.ts')
    if (protocols?.includes(IDENTITY_PROTOCOL) !== true) return undefined
    return new UnauthorizedError(
      `${this.peer} runs with SPIFFE identities and refused this client${this.identityHint()}`,
    )
  }

  /** The protocols `peer` announced, waiting up to `ms` for its identify; undefined if none came. */
  private async protocolsOf(peer: string, ms: number): Promise<string[] | undefined> {
    const end = performance.now() + ms
    while (!this.announced.has(peer) && performance.now() < end) {
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, Math.max(0, end - performance.now()))
        this.announcedWaiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    return this.announced.get(peer)
  }

  /** What a client without an SVID can do about a refusal. */
  private identityHint(): string {
    if (this.node.services.identity !== undefined) return ''
    return (
      ' (this client has no SVID: pass --svid, --svid-key and --trust-bundle,' +
      ' or set CONCLAVE_SVID, CONCLAVE_SVID_KEY and CONCLAVE_TRUST_BUNDLE)'
    )
  }

  async close(): Promise<void> {
    await this.node.stop()
  }
}

/**
 * Runs the identity exchange with the agent: both sides check each other's SVID. Fails if the agent's
 * SVID does not check out against the client's bundle, or if the agent refused the client's (with its
 * reason): every request would be refused then.
 */
async function proveIdentity(identity: IdentityService, peer: string, address: string): Promise<void> {
  let failure: IdentityError | undefined
  try {
    await identity.authenticate(peer)
  } catch (err) {
    failure = err as IdentityError
  }
  // The agent's refusal comes first, even when the exchange then broke off: it closes the connection.
  const refusal = identity.refusal(peer)
  if (refusal !== undefined) {
    throw new UnauthorizedError(
      `${address} refused this client's identity (${identity.spiffeId}): ${refusal}`,
    )
  }
  if (failure !== undefined) {
    const hint = failure.reason === 'unreachable' ? ' (does the cluster run with SPIFFE identities?)' : ''
    throw new CliError(
      'IdentityError',
      `could not verify the identity of ${address}${hint}: ${failure.message}`,
    )
  }
}

/** Opens a connection, runs `body`, and closes it whatever happens. */
export async function withConnection<T>(
  args: ParsedArgs,
  body: (connection: Connection) => Promise<T>,
): Promise<T> {
  const connection = await Connection.open(args)
  try {
    return await body(connection)
  } finally {
    await connection.close().catch(() => {})
  }
}
