/**
 * A client's line to a cluster: a bare libp2p node (no conclave service: a client is not a member) that
 * dials one agent and calls the client protocol on it.
 */

import type { Libp2p } from '@libp2p/interface'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { CLIENT_PROTOCOL, type ClientOp, type ClientOps } from '../agent/client-protocol.ts'
import type { Rpc, RpcRemoteError } from '../net/rpc.ts'
import type { OptionSpec, ParsedArgs } from './args.ts'
import { UsageError } from './args.ts'
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
  { name: 'json', kind: 'boolean', description: 'print JSON for scripts' },
]

const DEFAULT_TIMEOUT_MS = 15_000

export interface CallOptions {
  /** The long poll's wait, added to the request timeout. */
  waitMs?: number
  /** Instead of the connection's timeout. */
  timeoutMs?: number
}

export class Connection {
  /** The agent's peer id. */
  readonly peer: string
  readonly timeoutMs: number
  private readonly node: Libp2p<{ rpc: Rpc }>
  private readonly encoder = new TextEncoder()
  private readonly decoder = new TextDecoder()

  private constructor(node: Libp2p<{ rpc: Rpc }>, peer: string, timeoutMs: number) {
    this.node = node
    this.peer = peer
    this.timeoutMs = timeoutMs
  }

  /** Dials the agent named by `--peer` or `CONCLAVE_PEER`. */
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
    // Loaded here, not at the top: `--help` and usage errors need not load libp2p.
    const { createConclaveLibp2p } = await import('../net/libp2p-node.ts')
    const { rpc } = await import('../net/rpc.ts')
    const psk = (args.options.psk as string | undefined) ?? (process.env.CONCLAVE_PSK || undefined)
    const node = await createConclaveLibp2p({
      listen: [],
      ...(psk === undefined ? {} : { psk }),
      services: { rpc: rpc({ defaultTimeoutMs: timeoutMs }) },
    })
    try {
      const connection = await node.dial(target, { signal: AbortSignal.timeout(timeoutMs) })
      return new Connection(node, connection.remotePeer.toString(), timeoutMs)
    } catch (err) {
      await Promise.resolve(node.stop()).catch(() => {})
      throw new CliError('ConnectionError', `could not reach ${address}: ${(err as Error).message}`)
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
        throw new CliError((err as RpcRemoteError).remoteName, (err as Error).message)
      }
      throw err
    }
    return JSON.parse(this.decoder.decode(response)) as ClientOps[Op]['result']
  }

  async close(): Promise<void> {
    await this.node.stop()
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
