import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { type Agent, createAgent } from '../../src/index.ts'
import { cli, RunningCli, until } from './helpers.ts'

const agents: Agent[] = []
const running: RunningCli[] = []
const root = mkdtempSync(join(tmpdir(), 'conclave-cli-snapshot-'))

afterEach(async () => {
  for (const process of running.splice(0)) {
    process.kill('SIGKILL')
    await process.exited
  }
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})
afterAll(() => rmSync(root, { recursive: true, force: true }))

const ADDRESS = /listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\w+)$/

describe('conclave snapshot', () => {
  it('saves a snapshot from a running 3-agent cluster, restores it into a new cluster an agent then serves', async () => {
    for (let i = 0; i < 3; i++) agents.push(await createAgent({ name: `c${i}` }))
    await agents[0].join({})
    for (const member of agents.slice(1)) await member.join({ bootstrap: agents[0].multiaddrs() })
    await until(
      async () => (await agents[0].members()).filter(member => member.role === 'voter').length === 3,
    )
    await agents[1].consensus.propose('config/model', { name: 'llama' })
    // Big enough for the file to come in several chunks (1 MiB each).
    for (let i = 0; i < 4; i++) await agents[0].consensus.propose(`blobs/${i}`, `${i}`.repeat(600_000))
    const lock = await agents[2].locks.acquire('locks/a', 30_000)
    await lock.release()

    // Asked of a follower: any member serves it.
    const follower = agents.find(member => !member.isLeader())!
    const file = join(root, 'cluster.snapshot')
    const saved = await cli(['snapshot', 'save', file, '--peer', follower.multiaddrs()[0], '--json'])
    expect(saved.stderr).toBe('')
    expect(saved.code).toBe(0)
    const result = JSON.parse(saved.stdout)
    expect(result.revision).toBe(5)
    expect(result.bytes).toBeGreaterThan(2 * 1024 * 1024)
    expect(result.bytes).toBe(readFileSync(file).length)
    expect(existsSync(`${file}.part`)).toBe(false)

    // A damaged copy: refused by its hash, nothing written.
    const bytes = readFileSync(file)
    bytes[bytes.length >> 1] ^= 0x04
    writeFileSync(join(root, 'damaged.snapshot'), bytes)
    const damaged = await cli([
      'snapshot',
      'restore',
      join(root, 'damaged.snapshot'),
      '--data-dir',
      join(root, 'd'),
    ])
    expect(damaged.code).toBe(1)
    expect(damaged.stderr).toMatch(/^SnapshotFileError: snapshot file integrity check failed/)
    expect(existsSync(join(root, 'd'))).toBe(false)

    // A data directory in use: refused.
    mkdirSync(join(root, 'used'))
    writeFileSync(join(root, 'used', 'conclave.sqlite'), 'x')
    const used = await cli(['snapshot', 'restore', file, '--data-dir', join(root, 'used')])
    expect(used.code).toBe(1)
    expect(used.stderr).toMatch(/^InvalidArgumentError: .*not empty/)
    expect(readdirSync(join(root, 'used'))).toEqual(['conclave.sqlite'])

    const restore = await cli(['snapshot', 'restore', file, '--data-dir', join(root, 'new'), '--json'])
    expect(restore.stderr).toBe('')
    expect(restore.code).toBe(0)
    const restored = JSON.parse(restore.stdout)
    expect(restored.fromCluster).toBe(result.clusterId)
    expect(restored.clusterId).not.toBe(result.clusterId)

    const agent = new RunningCli(['agent', '--data-dir', join(root, 'new')])
    running.push(agent)
    const address = ADDRESS.exec(await agent.line(ADDRESS))![1]
    expect(address).toContain(restored.agentId)
    await agent.line(/this agent is now the leader$/)
    const get = await cli(['kv', 'get', 'config/model', '--peer', address, '--json'])
    expect(get.code).toBe(0)
    expect(JSON.parse(get.stdout).value).toEqual({ name: 'llama' })
    const blob = await cli(['kv', 'get', 'blobs/3', '--peer', address, '--json'])
    expect(JSON.parse(blob.stdout).value).toBe('3'.repeat(600_000))
  }, 90_000)

  it('agent --force-new-cluster refuses a missing --data-dir (usage) and a directory that is not a replica', async () => {
    const usage = await cli(['agent', '--force-new-cluster'])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toMatch(/--force-new-cluster needs --data-dir/)
    mkdirSync(join(root, 'nothing'))
    const refused = await cli(['agent', '--force-new-cluster', '--data-dir', join(root, 'nothing')])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/^InvalidArgumentError: .*not a replica's data directory/)
    expect(readdirSync(join(root, 'nothing'))).toEqual([])
  }, 30_000)
})
