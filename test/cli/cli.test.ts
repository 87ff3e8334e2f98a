import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Agent } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'
import { cli, RunningCli, until } from './helpers.ts'

// The `conclave` command as a child process against agents running in this process on loopback TCP.
let agents: Agent[]
let leaderPeer: string
let followerPeer: string
const node = process.execPath

beforeAll(async () => {
  agents = [await createAgent({ name: 'c0' }), await createAgent({ name: 'c1' })]
  await agents[0].join({})
  await agents[1].join({ bootstrap: agents[0].multiaddrs() })
  await until(
    async () => (await agents[0].members()).filter(member => member.status === 'alive').length === 2,
  )
  leaderPeer = agents[0].multiaddrs()[0]
  followerPeer = agents[1].multiaddrs()[0]
})

afterAll(async () => {
  await Promise.all((agents ?? []).map(agent => agent.stop()))
})

function expectOneErrorLine(stderr: string, name: string): void {
  expect(stderr.endsWith('\n')).toBe(true)
  expect(stderr.trimEnd().split('\n')).toHaveLength(1)
  expect(stderr.startsWith(`${name}: `)).toBe(true)
}

describe('conclave command line', () => {
  it('prints usage for --help of every command and exits 0', async () => {
    const commands = [
      [],
      ['agent'],
      ['status'],
      ['kv'],
      ['kv', 'put'],
      ['kv', 'get'],
      ['kv', 'delete'],
      ['kv', 'watch'],
      ['lock'],
      ['task'],
      ['task', 'submit'],
      ['task', 'status'],
      ['elect'],
      ['psk'],
    ]
    const results = await Promise.all(commands.map(command => cli([...command, '--help'])))
    results.forEach((result, index) => {
      const name = ['conclave', ...commands[index]].join(' ')
      expect(result.code, name).toBe(0)
      expect(result.stderr, name).toBe('')
      expect(
        result.stdout.startsWith(`Usage: ${name}${commands[index].length === 0 ? ' <command>' : ''}`),
        name,
      ).toBe(true)
    })
    expect(results[4].stdout).toContain('--peer <multiaddr>')
    for (const flag of ['--svid <cert.pem>', '--svid-key <key.pem>', '--trust-bundle <bundle.pem>']) {
      expect(results[4].stdout).toContain(flag)
      expect(results[1].stdout).toContain(flag)
    }
    expect(results[4].stdout).toContain('CONCLAVE_SVID')
    expect(results[8].stdout).toContain('CONCLAVE_LOCK_TOKEN')
  })

  it('exits non-zero with one line on stderr for an unknown command, a bad flag, a bad value, no peer', async () => {
    const [unknown, badFlag, badValue, noPeer, missing, unreachable] = await Promise.all([
      cli(['frobnicate']),
      cli(['kv', 'get', 'k', '--bogus']),
      cli(['lock', 'k', '--ttl', 'soon', '--', 'true']),
      cli(['status']),
      cli(['kv', 'put', 'only-key']),
      cli(['status', '--peer', '/ip4/127.0.0.1/tcp/1', '--timeout', '2s']),
    ])
    for (const result of [unknown, badFlag, badValue, noPeer, missing]) {
      expect(result.code).toBe(2)
      expect(result.stdout).toBe('')
      expectOneErrorLine(result.stderr, 'UsageError')
    }
    expect(unknown.stderr).toContain('frobnicate')
    expect(badFlag.stderr).toContain('--bogus')
    expect(noPeer.stderr).toContain('CONCLAVE_PEER')
    expect(unreachable.code).toBe(1)
    expectOneErrorLine(unreachable.stderr, 'ConnectionError')
  })

  it('status shows the members and the leader', async () => {
    const [json, text] = await Promise.all([
      cli(['status', '--json', '--peer', followerPeer]),
      cli(['status'], { CONCLAVE_PEER: followerPeer }),
    ])
    expect(json.code).toBe(0)
    const status = JSON.parse(json.stdout)
    expect(status.members.map((member: { name: string }) => member.name).sort()).toEqual(['c0', 'c1'])
    expect(status.leader).toBe(agents[0].id)
    expect(status.term).toBeGreaterThan(0)
    expect(status.healthy).toBe(true)
    expect(status.agent.name).toBe('c1')
    expect(text.code).toBe(0)
    expect(text.stdout).toContain(`leader c0 (${agents[0].id})`)
    expect(text.stdout).toMatch(/\nc1 +nonvoter +alive/)
  })

  it('kv put and get round trip, in text and JSON, and report errors by name', async () => {
    const put = await cli(['kv', 'put', 'greeting', 'hello world', '--peer', followerPeer])
    expect(put.code).toBe(0)
    expect(put.stdout).toMatch(/^OK revision \d+\n$/)
    const putJson = await cli([
      'kv',
      'put',
      'count',
      '{"n":41}',
      '--value-json',
      '--json',
      '--peer',
      followerPeer,
    ])
    const revision = JSON.parse(putJson.stdout).revision
    expect(await agents[0].consensus.get('count')).toEqual({ n: 41 })
    const [text, json, absent, mismatch] = await Promise.all([
      cli(['kv', 'get', 'greeting', '--peer', leaderPeer]),
      cli(['kv', 'get', 'count', '--json', '--peer', followerPeer]),
      cli(['kv', 'get', 'no-such-key', '--peer', followerPeer]),
      cli(['kv', 'put', 'count', '1', '--expect-revision', String(revision - 1), '--peer', followerPeer]),
    ])
    expect(text.stdout).toBe('hello world\n')
    expect(JSON.parse(json.stdout)).toEqual({ key: 'count', value: { n: 41 } })
    expect(absent.code).toBe(1)
    expectOneErrorLine(absent.stderr, 'NotFoundError')
    expect(mismatch.code).toBe(1)
    expectOneErrorLine(mismatch.stderr, 'RevisionMismatchError')
    const deleted = await cli(['kv', 'delete', 'greeting', '--json', '--peer', followerPeer])
    expect(JSON.parse(deleted.stdout).revision).toBeGreaterThan(revision)
    expect(await agents[1].consensus.get('greeting')).toBeUndefined()
  })

  it('kv watch prints the changes under a prefix in revision order, one JSON line each', async () => {
    const { revision } = await agents[0].consensus.propose('watched/start', 0)
    const watch = new RunningCli([
      'kv',
      'watch',
      'watched/',
      '--json',
      '--from-revision',
      String(revision + 1),
      '--peer',
      followerPeer,
    ])
    try {
      await agents[0].consensus.propose('watched/a', 1)
      await agents[1].consensus.propose('unwatched', 2)
      await agents[0].consensus.propose('watched/b', { two: 2 })
      await agents[1].consensus.delete('watched/a')
      await until(() => watch.lines.length >= 3, 20_000)
      const events = watch.lines.map(line => JSON.parse(line))
      expect(events.map(event => [event.type, event.key, event.value])).toEqual([
        ['put', 'watched/a', 1],
        ['put', 'watched/b', { two: 2 }],
        ['delete', 'watched/a', undefined],
      ])
      const revisions = events.map(event => event.revision)
      expect(revisions).toEqual([...revisions].sort((a, b) => a - b))
      expect(new Set(revisions).size).toBe(3)
    } finally {
      watch.kill('SIGTERM')
    }
    expect((await watch.exited).code).toBe(0)
  })

  it('lock runs the command with the fencing token in its env and releases after', async () => {
    const result = await cli([
      'lock',
      'cli-lock',
      '--peer',
      followerPeer,
      '--',
      node,
      '-e',
      'console.log(process.env.CONCLAVE_LOCK_KEY, process.env.CONCLAVE_LOCK_TOKEN)',
    ])
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/^cli-lock \d+\n$/)
    const token = BigInt(result.stdout.trim().split(' ')[1])
    // Released: another holder gets it at once, with a greater token.
    const after = await agents[0].locks.tryAcquire('cli-lock', 5000)
    expect(after.acquired).toBe(true)
    expect(after.lock!.fencingToken).toBeGreaterThan(token)
    await after.lock!.release()
  })

  it("lock passes a failing command's exit status through and still releases", async () => {
    const result = await cli(['lock', 'cli-lock', '--peer', followerPeer, node, '-e', 'process.exit(7)'])
    expect(result.code).toBe(7)
    const second = await cli(['lock', 'cli-lock', '--wait', '3s', '--peer', leaderPeer, '--', node, '-e', ''])
    expect(second.code).toBe(0)
  })

  it('lock waits for a held lock first come first served, and gives up after --wait', async () => {
    const held = await agents[0].locks.acquire('busy-lock', 10_000)
    const gaveUp = await cli([
      'lock',
      'busy-lock',
      '--wait',
      '500ms',
      '--peer',
      followerPeer,
      '--',
      node,
      '-e',
      '',
    ])
    expect(gaveUp.code).toBe(1)
    expectOneErrorLine(gaveUp.stderr, 'TimeoutError')
    const waiting = new RunningCli([
      'lock',
      'busy-lock',
      '--peer',
      followerPeer,
      '--',
      node,
      '-e',
      'console.log("token", process.env.CONCLAVE_LOCK_TOKEN)',
    ])
    await new Promise(resolve => setTimeout(resolve, 700))
    expect(waiting.lines).toEqual([])
    await held.release()
    const line = await waiting.line(/^token \d+$/)
    expect(BigInt(line.split(' ')[1])).toBeGreaterThan(held.fencingToken)
    expect((await waiting.exited).code).toBe(0)
  })

  it('elect runs the command as leader, and hands leadership on when the holder stops', async () => {
    const once = await cli([
      'elect',
      'cli-election',
      '--peer',
      followerPeer,
      '--',
      node,
      '-e',
      'console.log(process.env.CONCLAVE_ELECTION, process.env.CONCLAVE_ELECTION_TERM); process.exit(3)',
    ])
    expect(once.code).toBe(3)
    expect(once.stdout).toMatch(/^cli-election \d+\n$/)
    const holder = new RunningCli(['elect', 'cli-election', '--json', '--peer', leaderPeer])
    const elected = JSON.parse(await holder.line(/"term"/))
    expect(elected).toMatchObject({ name: 'cli-election', agent: agents[0].id })
    const next = new RunningCli([
      'elect',
      'cli-election',
      '--peer',
      followerPeer,
      '--',
      node,
      '-e',
      'console.log("leading", process.env.CONCLAVE_ELECTION_TERM)',
    ])
    await new Promise(resolve => setTimeout(resolve, 700))
    expect(next.lines).toEqual([])
    holder.kill('SIGTERM')
    expect((await holder.exited).code).toBe(0)
    const line = await next.line(/^leading \d+$/)
    expect(Number(line.split(' ')[1])).toBeGreaterThan(elected.term)
    expect((await next.exited).code).toBe(0)
  })

  it('task submit and task status', async () => {
    const submitted = await cli([
      'task',
      'submit',
      'cli-task',
      '--payload',
      '{"n":1}',
      '--priority',
      '5',
      '--require',
      'nowhere-to-be-found',
      '--json',
      '--peer',
      followerPeer,
    ])
    expect(submitted.code).toBe(0)
    const task = JSON.parse(submitted.stdout)
    expect(task).toMatchObject({ type: 'cli-task', priority: 5, payload: { n: 1 } })
    expect(task.constraints.requiredCapabilities).toEqual(['nowhere-to-be-found'])
    const [json, text] = await Promise.all([
      cli(['task', 'status', task.id, '--json', '--peer', leaderPeer]),
      cli(['task', 'status', task.id, '--peer', leaderPeer]),
    ])
    expect(json.code).toBe(0)
    expect(JSON.parse(json.stdout)).toMatchObject({ id: task.id, state: 'pending', attempt: 0 })
    expect(text.stdout).toMatch(new RegExp(`^${task.id}: pending`))
    const unknown = await cli(['task', 'status', 'no-such-task', '--peer', leaderPeer])
    expect(unknown.code).toBe(1)
    expectOneErrorLine(unknown.stderr, 'NotFoundError')
  })
})

describe('conclave lock when the lock goes away', () => {
  it('stops the command and exits 1 when the serving agent stops and the lock is lost', async () => {
    const serving = await createAgent({ name: 'c2' })
    agents.push(serving)
    await serving.join({ bootstrap: agents[0].multiaddrs() })
    const run = new RunningCli([
      'lock',
      'lost-lock',
      '--ttl',
      '1500ms',
      '--peer',
      serving.multiaddrs()[0],
      '--',
      node,
      '-e',
      'console.log("pid", process.pid); setInterval(() => {}, 1000)',
    ])
    const pid = Number((await run.line(/^pid \d+$/)).split(' ')[1])
    await serving.stop()
    const exit = await run.exited
    expect(exit.code).toBe(1)
    expectOneErrorLine(run.stderr, 'LockLostError')
    expect(() => process.kill(pid, 0)).toThrow()
    // The cluster expires it after its ttl.
    const lock = await agents[0].locks.acquire('lost-lock', 1000, { signal: AbortSignal.timeout(10_000) })
    await lock.release()
  })

  it('lets a lock lapse after its ttl when the CLI holding it dies', async () => {
    const run = new RunningCli(['lock', 'orphan-lock', '--ttl', '1s', '--json', '--peer', followerPeer])
    const held = JSON.parse(await run.line(/fencingToken/))
    run.kill('SIGKILL')
    await run.exited
    const begin = Date.now()
    const lock = await agents[0].locks.acquire('orphan-lock', 1000, { signal: AbortSignal.timeout(10_000) })
    expect(Date.now() - begin).toBeLessThan(3000)
    expect(lock.fencingToken).toBeGreaterThan(BigInt(held.fencingToken))
    await lock.release()
  })
})
