import { createServer, type Server } from 'node:net'
import { networkInterfaces } from 'node:os'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Agent } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'
import { type CliResult, cli, RunningCli, until } from './helpers.ts'

// The command line where a new user trips: several agents to talk to, start-up mistakes, the address to share.

/** One line on stderr, `Name: ...`, no stack trace, nothing on stdout (the agent did not start). */
function expectStartRefused(result: CliResult, code: number, name: string, pattern: RegExp): void {
  expect(result.code, result.stderr).toBe(code)
  expect(result.stdout).toBe('')
  expect(result.stderr.endsWith('\n')).toBe(true)
  expect(result.stderr.trimEnd().split('\n')).toHaveLength(1)
  expect(result.stderr.startsWith(`${name}: `), result.stderr).toBe(true)
  expect(result.stderr).toMatch(pattern)
  expect(result.stderr).not.toMatch(/\bat \S+:\d+|faultTolerance|multibase/)
}

describe('conclave agent: start-up mistakes', () => {
  let busy: Server
  let busyPort: number

  beforeAll(async () => {
    busy = createServer()
    await new Promise<void>(resolve => busy.listen({ host: '127.0.0.1', port: 0 }, resolve))
    busyPort = (busy.address() as { port: number }).port
  })

  afterAll(() => busy.close())

  it('names the option and the cause in one line, before anything listens; usage mistakes exit 2', async () => {
    const [inUse, hostPort, nonsense, noPeerId, badPeerId, udp, notDir] = await Promise.all([
      cli(['agent', '--listen', `/ip4/127.0.0.1/tcp/${busyPort}`]),
      cli(['agent', '--listen', '127.0.0.1:7131']),
      cli(['agent', '--bootstrap', 'nonsense']),
      cli(['agent', '--bootstrap', '/ip4/127.0.0.1/tcp/7131']),
      cli(['status', '--peer', '/ip4/127.0.0.1/tcp/7131/p2p/abc']),
      cli(['agent', '--listen', '/ip4/127.0.0.1/udp/7131']),
      cli(['agent', '--data-dir', `${process.execPath}/data`]),
    ])
    expectStartRefused(
      inUse,
      2,
      'ListenError',
      new RegExp(`^ListenError: --listen /ip4/127.0.0.1/tcp/${busyPort}: address already in use`),
    )
    expectStartRefused(
      hostPort,
      2,
      'UsageError',
      /--listen 127\.0\.0\.1:7131 is not a multiaddr \(did you mean \/ip4\/127\.0\.0\.1\/tcp\/7131\?\)/,
    )
    expectStartRefused(nonsense, 2, 'UsageError', /--bootstrap nonsense is not a multiaddr/)
    expectStartRefused(
      noPeerId,
      2,
      'UsageError',
      /--bootstrap \/ip4\/127\.0\.0\.1\/tcp\/7131: add the agent's \/p2p\//,
    )
    expectStartRefused(badPeerId, 2, 'UsageError', /--peer \S+\/p2p\/abc: abc is not a peer id/)
    expectStartRefused(udp, 2, 'UsageError', /--listen \/ip4\/127\.0\.0\.1\/udp\/7131: not a TCP address/)
    expectStartRefused(notDir, 1, 'DataDirError', /--data-dir \S+: ENOTDIR/)
  })
})

describe('clients with several agents', () => {
  let agents: Agent[]
  let leader: string
  let follower: string
  /** An agent that was stopped: a valid address nobody answers on. */
  let dead: string

  beforeAll(async () => {
    const gone = await createAgent({ name: 'gone' })
    dead = gone.multiaddrs()[0]
    await gone.stop()
    agents = [await createAgent({ name: 'e0' }), await createAgent({ name: 'e1' })]
    await agents[0].join({})
    await agents[1].join({ bootstrap: agents[0].multiaddrs() })
    await until(
      async () => (await agents[0].members()).filter(member => member.status === 'alive').length === 2,
    )
    leader = agents[0].multiaddrs()[0]
    follower = agents[1].multiaddrs()[0]
  })

  afterAll(async () => {
    await Promise.all((agents ?? []).map(agent => agent.stop()))
  })

  it('take a comma list in CONCLAVE_PEER or a repeated --peer, and use the first agent that answers', async () => {
    const [fromEnv, repeated, none] = await Promise.all([
      cli(['status', '--json'], { CONCLAVE_PEER: `${dead},${follower}` }),
      cli(['kv', 'put', 'multi', 'yes', '--peer', dead, '--peer', leader]),
      cli(['status', '--peer', `${dead},${dead.replace(/tcp\/\d+/, 'tcp/1')}`, '--timeout', '2s']),
    ])
    const comma = await cli(['kv', 'get', 'multi', '--peer', `${dead},${follower}`])
    expect(fromEnv.code, fromEnv.stderr).toBe(0)
    expect(JSON.parse(fromEnv.stdout).agent.name).toBe('e1')
    expect(repeated.code, repeated.stderr).toBe(0)
    expect(comma.code, comma.stderr).toBe(0)
    expect(comma.stdout).toBe('yes\n')
    expect(none.code).toBe(1)
    expect(none.stderr.trimEnd().split('\n')).toHaveLength(1)
    expect(none.stderr).toMatch(/^ConnectionError: could not reach \S+: .*; \S+tcp\/1\S*: /)
  })

  it('kv watch goes on from its last revision on the next agent, and names the revision to resume from when none is left', async () => {
    const [first, second] = [await createAgent({ name: 'e2' }), await createAgent({ name: 'e3' })]
    try {
      await first.join({ bootstrap: agents[0].multiaddrs() })
      await second.join({ bootstrap: agents[0].multiaddrs() })
      const { revision: start } = await agents[0].consensus.propose('fo-start', true)
      const peers = `${first.multiaddrs()[0]},${second.multiaddrs()[0]}`
      const from = `${start + 1}`
      const watch = new RunningCli(['kv', 'watch', 'fo/', '--json', '--from-revision', from, '--peer', peers])
      try {
        for (let i = 0; i < 3; i++) await agents[0].consensus.propose(`fo/${i}`, i)
        await watch.line(/"key":"fo\/2"/)
        await first.stop()
        for (let i = 3; i < 6; i++) await agents[0].consensus.propose(`fo/${i}`, i)
        await watch.line(/"key":"fo\/5"/, 30_000)
        const events = watch.lines.map(line => JSON.parse(line) as { key: string; revision: number })
        expect(events.map(event => event.key)).toEqual(['fo/0', 'fo/1', 'fo/2', 'fo/3', 'fo/4', 'fo/5'])
        const revisions = events.map(event => event.revision)
        expect(revisions).toEqual([...revisions].sort((a, b) => a - b))
        expect(watch.stderr).toMatch(/lost \S+ \(.*\); watching from revision \d+ on \S+/)

        // The last agent named goes too: the watch ends, saying where to pick up without a gap.
        await second.stop()
        expect((await watch.exited).code).toBe(1)
        const last = watch.stderr.trimEnd().split('\n').at(-1)!
        expect(last).toMatch(new RegExp(`; resume with --from-revision ${revisions.at(-1)! + 1}$`))
      } finally {
        watch.kill('SIGINT')
        await watch.exited
      }
    } finally {
      await Promise.all([first.stop(), second.stop()])
    }
  })
})

describe('conclave agent: the address others join with', () => {
  it('with a wildcard --listen, is an address of an interface other hosts reach, not loopback', async () => {
    const agent = new RunningCli(['agent', '--listen', '/ip4/0.0.0.0/tcp/0', '--json'])
    try {
      const joined = JSON.parse(await agent.line(/"event":"joined"/)) as {
        message: string
        bootstrap: string[]
      }
      const external = Object.values(networkInterfaces())
        .flat()
        .filter(address => address !== undefined && address.family === 'IPv4' && !address.internal)
        .map(address => address!.address)
      const hosts = joined.bootstrap.map(address => address.split('/')[2])
      if (external.length > 0) {
        expect(hosts.sort()).toEqual([...external].sort())
        expect(joined.message).not.toContain('/ip4/127.0.0.1/')
      } else {
        expect(hosts).toEqual(['127.0.0.1'])
      }
      for (const address of joined.bootstrap) expect(joined.message).toContain(address)
    } finally {
      agent.kill('SIGINT')
      await agent.exited
    }
  })
})
