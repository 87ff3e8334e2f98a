import type { Agent, AgentInfo } from '../api.ts'
import { InvalidArgumentError } from '../errors.ts'
import { parseHttpAddress } from '../http/address.ts'
import type { PendingDashboard } from '../http/server.ts'
import { agentSource, internalsOf } from '../http/source.ts'
import { loadPsk } from '../net/pnet.ts'
import { sleep } from '../time/sleep.ts'
import { systemScheduler } from '../time/system-scheduler.ts'
import { checkAgentAddress, checkListenAddress, joinAddresses, listenFailure } from './addresses.ts'
import { agentLog, bindMetrics, TELEMETRY_OPTIONS } from './agent-telemetry.ts'
import type { ParsedArgs } from './args.ts'
import { UsageError } from './args.ts'
import type { CliCommand } from './command.ts'
import { onStopSignal } from './hold.ts'
import { identityOptions, loadIdentity, readIdentityFiles, readPolicyFile } from './identity.ts'
import { CliError, formatError, printError } from './output.ts'

/** How often the SVID files are re-read for a renewal. */
const SVID_RELOAD_MS = 5_000

/** How often the member list is compared with the last one, for the join/leave/role log lines. */
const MEMBERS_POLL_MS = 1000

export const agentCommand: CliCommand = {
  spec: {
    name: 'agent',
    summary: 'Run an agent in the foreground, logging what happens, until SIGINT or SIGTERM.',
    details:
      'Without --bootstrap it founds a new cluster (or, with --data-dir, resumes the one stored there).\n' +
      'It prints the addresses other agents and clients use: pass one as --bootstrap or --peer.\n' +
      'SIGINT/SIGTERM stop it without leaving the cluster: a restart on the same --data-dir rejoins as the\n' +
      'same member.\n' +
      'With --svid, --svid-key and --trust-bundle (all three), it runs with SPIFFE identities: only peers\n' +
      'and clients with an SVID of the trust domain may talk to it; --policy <file> says which of them may do\n' +
      'what (default: all of them everything). The file is JSON, the rules createAgent takes as\n' +
      'security.policy: [{ "ids": ["spiffe://example.org/agent/*"], "allow": "*" },\n' +
      '{ "ids": ["spiffe://example.org/ci"], "allow": ["submitTask", "write"] }]; an ID no rule names may only\n' +
      'read. Actions: join, vote, submitTask, runTask, lock, write. The SVID files are re-read every 5 s: a\n' +
      'renewed SVID written over them (by a SPIRE helper) is used without a restart.',
    positionals: [],
    options: [
      {
        name: 'name',
        kind: 'string',
        placeholder: '<name>',
        description: 'unique label (default: short peer id)',
      },
      {
        name: 'listen',
        kind: 'string',
        repeatable: true,
        placeholder: '<multiaddr>',
        description: 'address to listen on, repeatable (default /ip4/127.0.0.1/tcp/0)',
      },
      {
        name: 'bootstrap',
        kind: 'list',
        placeholder: '<multiaddr,...>',
        description: 'address of any member (with /p2p/<id>), repeatable or comma-separated',
      },
      {
        name: 'data-dir',
        kind: 'string',
        placeholder: '<dir>',
        description: 'durable state: Raft log, snapshots, peer key (default: in memory)',
      },
      {
        name: 'psk',
        kind: 'string',
        placeholder: '<file>',
        description: 'private network key file: only holders of the same key can connect',
      },
      ...identityOptions('agent'),
      {
        name: 'policy',
        kind: 'string',
        placeholder: '<rules.json>',
        description: 'who may do what, by SPIFFE ID (needs --svid; default: every valid SVID everything)',
      },
      { name: 'capabilities', kind: 'list', placeholder: '<a,b>', description: 'what this agent can run' },
      { name: 'labels', kind: 'list', placeholder: '<k=v,...>', description: 'labels of this agent' },
      { name: 'concurrency', kind: 'integer', placeholder: '<n>', description: 'task slots (default 10)' },
      {
        name: 'voters',
        kind: 'integer',
        placeholder: '<n>',
        description: 'target size of the Raft voter set: odd, 1 to 7 (default 3)',
      },
      {
        name: 'cluster-id',
        kind: 'string',
        placeholder: '<id>',
        description: 'refuse to join a cluster with another id',
      },
      { name: 'json', kind: 'boolean', description: 'log one JSON object per line' },
      {
        name: 'http',
        kind: 'string',
        placeholder: '<host:port>',
        description: 'serve the live web dashboard there (read-only), e.g. 127.0.0.1:7070',
      },
      {
        name: 'force-new-cluster',
        kind: 'boolean',
        description: "after a lost quorum: lead alone from this survivor's --data-dir (others join it)",
      },
      {
        name: 'http-allow-remote',
        kind: 'boolean',
        description: 'with --svid, let --http serve on a non-loopback address',
      },
      ...TELEMETRY_OPTIONS,
    ],
  },
  run: runAgent,
}

type Log = (event: string, message: string, fields?: Record<string, unknown>) => void

async function runAgent(args: ParsedArgs): Promise<number> {
  const options = args.options
  const labels: Record<string, string> = {}
  for (const pair of (options.labels as string[] | undefined) ?? []) {
    const equals = pair.indexOf('=')
    if (equals <= 0) throw new UsageError(`--labels takes k=v pairs, got ${JSON.stringify(pair)}`)
    labels[pair.slice(0, equals)] = pair.slice(equals + 1)
  }
  const voters = options.voters as number | undefined
  if (voters !== undefined && (voters < 1 || voters > 7 || voters % 2 === 0)) {
    throw new UsageError('--voters must be odd, from 1 to 7')
  }
  const forceNewCluster = options['force-new-cluster'] === true
  if (forceNewCluster && (options['data-dir'] === undefined || options.bootstrap !== undefined)) {
    throw new UsageError("--force-new-cluster needs --data-dir (a surviving replica's) and no --bootstrap")
  }
  const identityFiles = readIdentityFiles(args, false)
  // Checked here too, so that a wrong file is reported under its option's name.
  if (identityFiles !== undefined) loadIdentity(identityFiles)
  const policyPath = options.policy as string | undefined
  if (policyPath !== undefined && identityFiles === undefined) {
    throw new UsageError('--policy needs --svid, --svid-key and --trust-bundle')
  }
  const policy = policyPath === undefined ? undefined : readPolicyFile(policyPath)
  // Every address is checked before anything listens: a mistake is a usage error naming its option.
  const listen = options.listen as string[] | undefined
  for (const address of listen ?? []) checkListenAddress(address)
  const bootstrap = (options.bootstrap as string[] | undefined) ?? []
  for (const address of bootstrap) checkAgentAddress('bootstrap', address, true)
  checkStartOptions(options)
  const log = agentLog(options)
  // Bound before the agent listens: a bad or busy address fails first, naming the option.
  const dashboard = await bindDashboard(options, identityFiles !== undefined)
  const metrics = await bindMetrics(options).catch(async (err: unknown) => {
    await dashboard?.close()
    throw err
  })
  // Signals are caught from the start: a stop while starting or joining still stops cleanly.
  const stop = onStopSignal()
  const running = new AbortController()
  stop.signal.then(() => running.abort())
  // Loaded here, not at the top: `conclave --help` need not load libp2p.
  const { createAgent } = await import('../agent/create-agent.ts')
  let agent: Agent
  try {
    agent = await createAgent({
      name: options.name as string | undefined,
      dataDir: options['data-dir'] as string | undefined,
      listen,
      capabilities: options.capabilities as string[] | undefined,
      labels: options.labels === undefined ? undefined : labels,
      concurrency: options.concurrency as number | undefined,
      ...(forceNewCluster ? { forceNewCluster } : {}),
      ...(options.psk === undefined ? {} : { psk: options.psk as string }),
      ...(identityFiles === undefined
        ? {}
        : {
            security: {
              // Paths, re-read every few seconds: a renewed SVID (a SPIRE helper) is taken without a restart.
              svid: { certificate: identityFiles.paths.certificate, key: identityFiles.paths.key },
              trustBundle: identityFiles.paths.trustBundle,
              reloadIntervalMs: SVID_RELOAD_MS,
              ...(policy === undefined ? {} : { policy }),
            },
          }),
    })
  } catch (err) {
    stop.dispose()
    await dashboard?.close()
    await metrics?.close()
    throw await startFailure(err, options)
  }
  log.agent = agent.name
  dashboard?.attach(agentSource(agent))
  metrics?.attach(agent)
  const addrs = agent.multiaddrs()
  log('started', `agent ${agent.name} started, peer id ${agent.id}`, {
    id: agent.id,
    name: agent.name,
    addrs,
  })
  for (const address of addrs) log('listening', `listening on ${address}`, { address })
  if (dashboard !== undefined) log('dashboard', `dashboard on ${dashboard.url}`, { url: dashboard.url })
  if (metrics !== undefined) log('metrics', `metrics on ${metrics.url}`, { url: metrics.url })
  let status = 0
  // Fail-stop: an agent that cannot apply its log (a newer version wrote it) must not stay up looking
  // healthy, whether that shows while it joins or later.
  let haltReason: Error | undefined
  const halted = haltOf(agent, running.signal).then(error => {
    haltReason = error
    return error
  })
  try {
    if (bootstrap.length === 0) {
      log('founding', 'no --bootstrap: founding a new cluster (or resuming the one in --data-dir)')
    } else {
      log('joining', `joining through ${bootstrap.join(', ')}`, { bootstrap })
    }
    const joining = agent
      .join(
        {
          bootstrap,
          voters,
          clusterId: options['cluster-id'] as string | undefined,
        },
        { signal: running.signal },
      )
      .then(
        () => true,
        (err: unknown) => {
          if (running.signal.aborted) return false
          throw err
        },
      )
    const joined = await Promise.race([joining, halted.then(error => Promise.reject(error))])
    if (joined) {
      const members = await agent.members()
      // Others reach it on these: with a wildcard --listen, not the loopback address libp2p lists first.
      const reachable = joinAddresses(addrs)
      const how =
        reachable.length === 1
          ? `--bootstrap ${reachable[0]}`
          : `--bootstrap and one of ${reachable.join(' ')}`
      log('joined', `member of the cluster (${members.length} members); others join with ${how}`, {
        members: members.length,
        bootstrap: reachable,
      })
      followLeader(agent, log, running.signal)
      followMembers(agent, log, running.signal)
    }
    const outcome = await Promise.race([stop.signal, halted.then(error => Promise.reject(error))])
    log('stopping', `${outcome}: stopping`, { signal: outcome })
  } catch (err) {
    // A halt that join met first (it rejects with the same error) is reported as the halt it is.
    if (err !== undefined && (err === haltReason || err === internalsOf(agent)?.halted?.())) {
      log('error', (err as Error).message)
    } else printError(err)
    status = 1
  } finally {
    running.abort()
    stop.dispose()
    await dashboard?.close()
    await metrics?.close()
    await agent.stop()
    log('stopped', 'stopped')
  }
  return status
}

/**
 * Resolves with the reason once the agent stops applying its log (an entry from a newer version: see the
 * README, "Upgrades"); never while it applies. Checked once a second, as the member list is.
 */
async function haltOf(agent: Agent, signal: AbortSignal): Promise<Error> {
  const internals = internalsOf(agent)
  for (;;) {
    const halted = internals?.halted?.()
    if (halted !== undefined) return halted
    // Stopping: never settles, so the stop signal alone decides.
    await sleep(systemScheduler, MEMBERS_POLL_MS, signal).catch(() => new Promise<never>(() => {}))
  }
}

/** The dashboard's server, bound to `--http` (undefined without it); a bad or busy address is a usage error. */
async function bindDashboard(
  options: ParsedArgs['options'],
  secured: boolean,
): Promise<PendingDashboard | undefined> {
  const text = options.http as string | undefined
  if (text === undefined) return undefined
  // Loaded only with --http: an agent without a dashboard needs none of its server, page model or assets.
  const { listenDashboard } = await import('../http/server.ts')
  try {
    const { host, port } = parseHttpAddress(text)
    return await listenDashboard({ host, port, secured, allowRemote: options['http-allow-remote'] === true })
  } catch (err) {
    throw new UsageError(`--http ${text}: ${(err as Error).message}`)
  }
}

/** The other options `createAgent` would refuse, refused first under their command-line names. */
function checkStartOptions(options: ParsedArgs['options']): void {
  const name = options.name as string | undefined
  if (name !== undefined && name.trim() === '') throw new UsageError('--name must not be empty')
  const dataDir = options['data-dir'] as string | undefined
  if (dataDir !== undefined && dataDir === '') throw new UsageError('--data-dir must not be empty')
  const concurrency = options.concurrency as number | undefined
  if (concurrency !== undefined && concurrency < 1) throw new UsageError('--concurrency must be at least 1')
  const psk = options.psk as string | undefined
  if (psk !== undefined) {
    try {
      loadPsk(psk)
    } catch (err) {
      throw new InvalidArgumentError(`--psk: ${(err as Error).message}`, { cause: err })
    }
  }
}

/**
 * What to report when the agent could not start: the option at fault and why, in one line, rather than
 * libp2p's or the storage's own words (which name no option, and may carry a stack trace).
 */
async function startFailure(err: unknown, options: ParsedArgs['options']): Promise<unknown> {
  const name = (err as Error | undefined)?.name
  const dataDir = options['data-dir'] as string | undefined
  if (dataDir !== undefined && name?.startsWith('Storage') === true) {
    return new CliError(name, `--data-dir ${dataDir}: ${(err as Error).message}`)
  }
  const system = err as NodeJS.ErrnoException
  if (dataDir !== undefined && system.syscall !== undefined && system.path?.startsWith(dataDir) === true) {
    // The directory could not be created or opened (not a directory, no permission, read-only, ...).
    return new CliError(
      'DataDirError',
      `--data-dir ${dataDir}: ${system.code ?? system.message} (${system.syscall} ${system.path})`,
    )
  }
  const listen = (options.listen as string[] | undefined) ?? []
  for (const address of listen) {
    const why = await listenFailure(address)
    if (why !== undefined) return new CliError('ListenError', `--listen ${address}: ${why}`, 2)
  }
  if (name === 'UnsupportedListenAddressesError' || name === 'NoValidAddressesError') {
    const addresses = listen.length === 0 ? 'the default address /ip4/127.0.0.1/tcp/0' : listen.join(' ')
    return new CliError('ListenError', `--listen: could not listen on ${addresses}`, 2)
  }
  return err
}

/** Logs every Raft leader change, and this agent's own rise and fall. */
function followLeader(agent: Agent, log: Log, signal: AbortSignal): void {
  const names = new Map<string, string>()
  const nameOf = (id: string): string => names.get(id) ?? id.slice(-8)
  let previous = ''
  const follow = async (): Promise<void> => {
    for await (const event of agent.election.watch({ signal })) {
      for (const member of await agent.members().catch(() => [])) names.set(member.id, member.name)
      const fields = { leaderId: event.leaderId, term: event.term }
      if (event.type === 'resigned') {
        log('leader', `no leader: ${nameOf(event.leaderId)} stepped down (term ${event.term})`, {
          ...fields,
          leaderId: '',
        })
      } else {
        log('leader', `leader is ${nameOf(event.leaderId)} (${event.leaderId}), term ${event.term}`, {
          ...fields,
          leaderName: nameOf(event.leaderId),
        })
      }
      const current = event.type === 'resigned' ? '' : event.leaderId
      if (current === agent.id && previous !== agent.id)
        log('role', 'this agent is now the leader', { role: 'leader' })
      if (previous === agent.id && current !== agent.id) {
        log('role', 'this agent is no longer the leader', { role: 'follower' })
      }
      previous = current
    }
  }
  follow().catch(err => {
    if (!signal.aborted) log('error', `leader watch ended: ${formatError(err)}`)
  })
}

/** Logs members joining, leaving, changing role (voter/non-voter) and status (alive/dead). */
function followMembers(agent: Agent, log: Log, signal: AbortSignal): void {
  let known = new Map<string, AgentInfo>()
  let first = true
  const poll = async (): Promise<void> => {
    const members = await agent.members()
    const current = new Map(members.map(member => [member.id, member]))
    for (const member of members) {
      const before = known.get(member.id)
      const self = member.id === agent.id ? ' (this agent)' : ''
      const fields = { id: member.id, name: member.name, role: member.role, status: member.status }
      if (before === undefined) {
        log(
          'member',
          `${first ? 'member' : 'member joined'}: ${member.name}${self} ${member.role}, ${member.status}`,
          {
            ...fields,
            change: first ? 'present' : 'joined',
          },
        )
        continue
      }
      if (before.role !== member.role) {
        log('member', `member ${member.name}${self} is now a ${member.role}`, { ...fields, change: 'role' })
      }
      if (before.status !== member.status) {
        log('member', `member ${member.name}${self} is ${member.status}`, { ...fields, change: 'status' })
      }
    }
    for (const [id, member] of known) {
      if (!current.has(id))
        log('member', `member left: ${member.name}`, { id, name: member.name, change: 'left' })
    }
    known = current
    first = false
  }
  const loop = async (): Promise<void> => {
    while (!signal.aborted) {
      await poll().catch(err => {
        if (!signal.aborted) log('error', `member list: ${formatError(err)}`)
      })
      await sleep(systemScheduler, MEMBERS_POLL_MS, signal).catch(() => {})
    }
  }
  loop().catch(() => {})
}
