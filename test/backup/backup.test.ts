import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import {
  type Agent,
  type AgentOptions,
  createAgent,
  InvalidArgumentError,
  restoreSnapshot,
  SnapshotFileError,
  saveSnapshot,
} from '../../src/index.ts'

const agents: Agent[] = []
const root = mkdtempSync(join(tmpdir(), 'conclave-backup-'))

afterEach(async () => {
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})
afterAll(() => rmSync(root, { recursive: true, force: true }))

async function agent(options: AgentOptions): Promise<Agent> {
  const created = await createAgent(options)
  agents.push(created)
  return created
}

async function stop(member: Agent): Promise<void> {
  agents.splice(agents.indexOf(member), 1)
  await member.stop()
}

async function until(check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

/** Three agents on loopback TCP, all voters, with durable data directories under `name`. */
async function threeAgents(name: string): Promise<Agent[]> {
  const group: Agent[] = []
  for (let i = 0; i < 3; i++)
    group.push(await agent({ name: `${name}${i}`, dataDir: join(root, `${name}${i}`) }))
  await group[0].join({})
  for (const member of group.slice(1)) await member.join({ bootstrap: group[0].multiaddrs() })
  await until(async () => (await group[0].members()).filter(member => member.role === 'voter').length === 3)
  return group
}

/**
 * What users keep in a cluster: keys, a lock released (its fencing token must never be handed out again)
 * and one still held, tasks in terminal and waiting states.
 */
async function writeState(leader: Agent, other: Agent) {
  await leader.consensus.propose('config/model', { name: 'llama', size: 70 })
  await other.consensus.propose('jobs/last', 17)
  await leader.consensus.delete('jobs/last')
  await other.consensus.propose('jobs/next', 'b')
  const released = await other.locks.acquire('locks/released', 30_000)
  await released.release()
  const held = await leader.locks.acquire('locks/held', 30_000)
  await leader.tasks.submit({ id: 'task-done', type: 'resize', payload: { image: 'a.png' } })
  await leader.tasks.claim('task-done')
  await leader.tasks.complete('task-done', 'resized')
  await leader.tasks.submit({ id: 'task-dead', type: 'resize', constraints: { maxRetries: 0 } })
  await leader.tasks.claim('task-dead')
  await leader.tasks.fail('task-dead', 'broken image')
  // Nobody has this capability: it waits, pending, in the source cluster and in the restored one.
  await leader.tasks.submit({
    id: 'task-waiting',
    type: 'train',
    constraints: { requiredCapabilities: ['tpu'] },
  })
  return { releasedToken: released.fencingToken, heldToken: held.fencingToken }
}

async function taskStates(member: Agent): Promise<Record<string, string>> {
  const states: Record<string, string> = {}
  for (const id of ['task-done', 'task-dead', 'task-waiting'])
    states[id] = (await member.tasks.status(id)).state
  return states
}

describe('snapshot save and restore', () => {
  it('restores a snapshot of a running 3-agent cluster into a new cluster serving the same keys, fencing counters and tasks', async () => {
    const group = await threeAgents('s')
    const leader = group.find(member => member.isLeader())!
    const follower = group.find(member => !member.isLeader())!
    const { releasedToken, heldToken } = await writeState(leader, follower)
    const tasksBefore = await taskStates(leader)
    expect(tasksBefore).toEqual({ 'task-done': 'completed', 'task-dead': 'dead', 'task-waiting': 'pending' })

    // Taken at a follower: its barrier makes it hold every write acknowledged before.
    const saved = await saveSnapshot(follower)
    expect(saved.header.takenBy).toBe(follower.id)
    expect(saved.header.revision).toBeGreaterThanOrEqual(4)
    expect(saved.header.config.voters.sort()).toEqual(group.map(member => member.id).sort())
    await Promise.all(group.map(member => stop(member)))

    const dataDir = join(root, 'restored')
    const restored = await restoreSnapshot(saved.bytes, dataDir)
    expect(restored.clusterId).not.toBe(saved.header.clusterId)
    const back = await agent({ name: 'restored', dataDir, sessionTtlMs: 2000 })
    expect(back.id).toBe(restored.agentId)
    await back.join({})
    await until(() => back.isLeader())
    expect(await back.consensus.get('config/model')).toEqual({ name: 'llama', size: 70 })
    expect(await back.consensus.get('jobs/next')).toBe('b')
    expect(await back.consensus.get('jobs/last')).toBeUndefined()
    expect(await taskStates(back)).toEqual(tasksBefore)
    // The revision goes on from the snapshot's: watchers resuming from it miss nothing and see no reuse.
    const { revision } = await back.consensus.propose('after', 1)
    expect(revision).toBe(saved.header.revision + 1)
    // Fencing tokens go on above every token the old cluster handed out, for a released lock at once and
    // for a lock its old holder kept, once that holder's session is expired by the new leader.
    const again = await back.locks.acquire('locks/released', 30_000)
    expect(again.fencingToken).toBeGreaterThan(releasedToken)
    expect(again.fencingToken).toBeGreaterThan(heldToken)
    const taken = await back.locks.acquire('locks/held', 30_000)
    expect(taken.fencingToken).toBeGreaterThan(again.fencingToken)
    // Only one voter: the new agent itself.
    expect((await back.members()).filter(member => member.role === 'voter').map(member => member.id)).toEqual(
      [back.id],
    )

    // Others join the restored cluster and serve the same data.
    const joiner = await agent({ name: 'joiner' })
    await joiner.join({ bootstrap: back.multiaddrs() })
    expect(await joiner.consensus.get('config/model')).toEqual({ name: 'llama', size: 70 })
  }, 90_000)

  it('refuses a truncated or altered file, and a data directory that is not empty, writing nothing', async () => {
    const [founder] = [await agent({ name: 'lone' })]
    await founder.join({})
    await founder.consensus.propose('k', 'v')
    const { bytes } = await saveSnapshot(founder)

    const target = join(root, 'refused')
    await expect(restoreSnapshot(bytes.subarray(0, bytes.length - 10), target)).rejects.toBeInstanceOf(
      SnapshotFileError,
    )
    const altered = bytes.slice()
    altered[Math.floor(altered.length / 2)] ^= 0x20
    await expect(restoreSnapshot(altered, target)).rejects.toBeInstanceOf(SnapshotFileError)
    expect(existsSync(target)).toBe(false)
    expect(readdirSync(root).filter(name => name.includes('refused'))).toEqual([])

    const occupied = join(root, 'occupied')
    mkdirSync(occupied)
    writeFileSync(join(occupied, 'notes.txt'), 'mine')
    const error = await restoreSnapshot(bytes, occupied).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(InvalidArgumentError)
    expect((error as Error).message).toMatch(/not empty/)
    expect(readdirSync(occupied)).toEqual(['notes.txt'])
    expect(readdirSync(root).filter(name => name.includes('occupied'))).toEqual(['occupied'])

    // An empty directory is fine.
    const empty = join(root, 'empty')
    mkdirSync(empty)
    await restoreSnapshot(bytes, empty)
    expect(readdirSync(empty)).toContain('conclave.sqlite')
  }, 30_000)
})

describe('forceNewCluster', () => {
  it('lets one survivor of a 3-voter cluster whose other two are gone lead alone, serve the committed data and take writes', async () => {
    const group = await threeAgents('f')
    const leader = group.find(member => member.isLeader())!
    const follower = group.find(member => !member.isLeader())!
    const { releasedToken } = await writeState(leader, follower)
    const tasksBefore = await taskStates(leader)
    const survivorIndex = group.indexOf(follower)
    const survivorId = follower.id
    // The other two are lost: the survivor alone has no quorum, writes fail.
    for (const member of group.filter(member => member !== follower)) await stop(member)
    await expect(
      follower.consensus.propose('no-quorum', 1, { signal: AbortSignal.timeout(2000) }),
    ).rejects.toThrow()
    await stop(follower)

    const dataDir = join(root, `f${survivorIndex}`)
    const survivor = await agent({ name: 'survivor', dataDir, forceNewCluster: true })
    expect(survivor.id).toBe(survivorId)
    await survivor.join({})
    await until(() => survivor.isLeader())
    expect(await survivor.consensus.get('config/model')).toEqual({ name: 'llama', size: 70 })
    expect(await survivor.consensus.get('jobs/next')).toBe('b')
    expect(await taskStates(survivor)).toEqual(tasksBefore)
    await survivor.consensus.propose('after', 'quorum lost')
    expect(await survivor.consensus.get('after')).toBe('quorum lost')
    const lock = await survivor.locks.acquire('locks/released', 30_000)
    expect(lock.fencingToken).toBeGreaterThan(releasedToken)
    expect(
      (await survivor.members()).filter(member => member.role === 'voter').map(member => member.id),
    ).toEqual([survivor.id])

    // A restart without the flag resumes the same single-voter cluster.
    await stop(survivor)
    const again = await agent({ name: 'survivor', dataDir })
    await again.join({})
    await until(() => again.isLeader())
    expect(await again.consensus.get('after')).toBe('quorum lost')
  }, 90_000)

  it("refuses a directory that is not a voter's replica, writing nothing", async () => {
    const missing = join(root, 'never-created')
    await expect(createAgent({ dataDir: missing, forceNewCluster: true })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    )
    expect(existsSync(missing)).toBe(false)
    await expect(createAgent({ forceNewCluster: true })).rejects.toBeInstanceOf(InvalidArgumentError)

    // An agent that started on the directory but never founded or joined a cluster: a peer key, no log.
    const unjoined = join(root, 'unjoined')
    await stop(await agent({ dataDir: unjoined }))
    const error = await createAgent({ dataDir: unjoined, forceNewCluster: true }).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(InvalidArgumentError)
    expect((error as Error).message).toMatch(/no Raft log/)

    // A non-voter's replica: it has the log but was never a voter.
    const founder = await agent({ name: 'nv0', dataDir: join(root, 'nv0') })
    await founder.join({ voters: 1 })
    const nonVoter = await agent({ name: 'nv1', dataDir: join(root, 'nv1') })
    await nonVoter.join({ bootstrap: founder.multiaddrs() })
    await nonVoter.consensus.propose('k', 'v')
    expect((await founder.members()).find(member => member.id === nonVoter.id)?.role).toBe('nonvoter')
    await stop(nonVoter)
    const refused = await createAgent({ dataDir: join(root, 'nv1'), forceNewCluster: true }).catch(
      (err: unknown) => err,
    )
    expect(refused).toBeInstanceOf(InvalidArgumentError)
    expect((refused as Error).message).toMatch(/not a voter/)
    // Nothing was written: it restarts as the non-voter it was.
    const back = await agent({ name: 'nv1', dataDir: join(root, 'nv1') })
    await back.join({ bootstrap: founder.multiaddrs() })
    expect(await back.consensus.get('k')).toBe('v')
    expect((await founder.members()).find(member => member.id === back.id)?.role).toBe('nonvoter')
  }, 60_000)
})
