/**
 * A client's line to a cluster: a bare libp2p node (no conclave service: a client is not a member) that
 * dials one agent and calls the client protocol on it. With an SVID (`--svid`, `--svid-key`,
 * `--trust-bundle`), the node also runs the identity protocol: the agent checks who the client is and its
 * policy decides what the client may do, and the client checks the agent's SVID against its bundle.
 */

import type { Libp2p } from '@libp2p/interface'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { CLIENT_PROTOCOL, type ClientOp, type ClientOps } from '../agent/client-protocol.ts'
import { UnauthorizedError } from '../errors.ts'
import type { Rpc, RpcRemoteError } from '../net/rpc.ts'
import type { IdentityError } from '../security/errors.ts'
import type { IdentityService } from '../security/identity-protocol.ts'
import { raceTimeout } from '../time/sleep.ts'
import { systemScheduler } from '../time/system-scheduler.ts'
import type { OptionSpec, ParsedArgs } from './args.ts'
import { UsageError } from './args.ts'
import { identityOptions, loadIdentity, readIdentityFiles } from './identity.ts'
import { CliError } from './output.ts'

/** The options every client command takes. */
export const CLIENT_OPTIONS: OptionSpec[] = [
  {
    name: 'peer',
    kind: 'string',
    placeholder: '<multiaddr>',
    description: 'any agent of the cluster (default: env CONCLAVE_PEER)',
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

export class Connection {
  /** The agent's peer id. */
  readonly peer: string
  readonly timeoutMs: number
  private readonly node: Libp2p<ClientServices>
  /** The protocols the agent announced (libp2p identify), to tell why it closed the connection. */
  private readonly announced: Promise<string[]>
  private readonly encoder = new TextEncoder()
  private readonly decoder = new TextDecoder()

  private constructor(
    node: Libp2p<ClientServices>,
    peer: string,
    timeoutMs: number,
    announced: Promise<string[]>,
  ) {
    this.node = node
    this.peer = peer
    this.timeoutMs = timeoutMs
    this.announced = announced
  }

  /** Dials the agent named by `--peer` or `CONCLAVE_PEER`, and proves the client's SVID to it if it has one. */
  static async open(args: ParsedArgs): Promise<Connection> {
    const address = (args.options.peer as string | undefined) ?? process.env.CONCLAVE_PEER
    if (address === undefined || address === '') {
      throw new UsageError('no agent to talk to: pass --peer <multiaddr> or set CONCLAVE_PEER')
    }
    let target: Multiaddr
    try {
      target = multiaddr(address)
    } catch {
      throw new UsageError(`--peer is not a multiaddr: ${address}`)
    }
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
    // The only peer this node dials is the agent; identify runs as the connection opens.
    const announced = new Promise<string[]>(resolve => {
      node.addEventListener('peer:identify', event => resolve(event.detail.protocols), { once: true })
    })
    try {
      let peer: string
      try {
        peer = (await node.dial(target, { signal: AbortSignal.timeout(timeoutMs) })).remotePeer.toString()
      } catch (err) {
        throw new CliError('ConnectionError', `could not reach ${address}: ${(err as Error).message}`)
      }
      if (node.services.identity !== undefined) await proveIdentity(node.services.identity, peer, address)
      return new Connection(node, peer, timeoutMs, announced)
    } catch (err) {
      await Promise.resolve(node.stop()).catch(() => {})
      throw err
    }
  }

  /** Runs `op` on the agent; a failure there is rethrown under its own name (e.g. `NoLeaderError`). */
  async call<Op extends ClientOp>(
    op: Op,
    args: ClientOps[Op]['args'],
    options: CallOptions = {},
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
        throw new CliError(remoteName, `${(err as Error).message}${hint}`)
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
    const protocols = await raceTimeout(
      systemScheduler,
      this.announced,
      Math.min(1_000, this.timeoutMs),
      () => undefined,
    )
    const { IDENTITY_PROTOCOL } = await import('../security/identity-protocol.ts')
    if (protocols?.includes(IDENTITY_PROTOCOL) !== true) return undefined
    return new UnauthorizedError(
      `${this.peer} runs with SPIFFE identities and refused this client${this.identityHint()}`,
    )
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
