import type { Agent, AgentInfo } from '../api.ts'
import { sleep } from '../time/sleep.ts'
import { systemScheduler } from '../time/system-scheduler.ts'
import type { ParsedArgs } from './args.ts'
import { UsageError } from './args.ts'
import type { CliCommand } from './command.ts'
import { onStopSignal } from './hold.ts'
import { identityOptions, loadIdentity, readIdentityFiles, readPolicyFile } from './identity.ts'
import { formatError, printError, printJson, printLine } from './output.ts'

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
    ],
  },
  run: runAgent,
}

type Log = (event: string, message: string, fields?: Record<string, unknown>) => void

function logger(json: boolean): Log {
  return (event, message, fields = {}) => {
    const time = new Date().toISOString()
    if (json) printJson({ time, event, message, ...fields })
    else printLine(`${time} ${message}`)
  }
}

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
  const identityFiles = readIdentityFiles(args, false)
  // Checked here too, so that a wrong file is reported under its option's name.
  if (identityFiles !== undefined) loadIdentity(identityFiles)
  const policyPath = options.policy as string | undefined
  if (policyPath !== undefined && identityFiles === undefined) {
    throw new UsageError('--policy needs --svid, --svid-key and --trust-bundle')
  }
  const policy = policyPath === undefined ? undefined : readPolicyFile(policyPath)
  const log = logger(options.json === true)
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
      listen: options.listen as string[] | undefined,
      capabilities: options.capabilities as string[] | undefined,
      labels: options.labels === undefined ? undefined : labels,
      concurrency: options.concurrency as number | undefined,
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
    throw err
  }
  const addrs = agent.multiaddrs()
  log('started', `agent ${agent.name} started, peer id ${agent.id}`, {
    id: agent.id,
    name: agent.name,
    addrs,
  })
  for (const address of addrs) log('listening', `listening on ${address}`, { address })
  let status = 0
  try {
    const bootstrap = (options.bootstrap as string[] | undefined) ?? []
    if (bootstrap.length === 0) {
      log('founding', 'no --bootstrap: founding a new cluster (or resuming the one in --data-dir)')
    } else {
      log('joining', `joining through ${bootstrap.join(', ')}`, { bootstrap })
    }
    const joined = await agent
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
    if (joined) {
      const members = await agent.members()
      log(
        'joined',
        `member of the cluster (${members.length} members); others join with --bootstrap ${addrs[0]}`,
        {
          members: members.length,
        },
      )
      followLeader(agent, log, running.signal)
      followMembers(agent, log, running.signal)
    }
    const signal = await stop.signal
    log('stopping', `${signal}: stopping`, { signal })
  } catch (err) {
    printError(err)
    status = 1
  } finally {
    running.abort()
    stop.dispose()
    await agent.stop()
    log('stopped', 'stopped')
  }
  return status
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
