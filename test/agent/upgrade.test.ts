import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { withCommandSetVersion } from '../../src/agent/internal-options.ts'
import type { ConclaveService } from '../../src/agent/service.ts'
import { META_CLUSTER_ID, META_LEFT, META_PEER_ID, META_PEER_KEY } from '../../src/backup/agent-meta.ts'
import type { Agent, AgentOptions } from '../../src/index.ts'
import { createAgent, UnsupportedVersionError } from '../../src/index.ts'
import type { StateMachine } from '../../src/state/index.ts'
import { COMMAND_SET_VERSION } from '../../src/state/versions.ts'
import { SqliteRaftStorage } from '../../src/storage/sqlite-storage.ts'

// A rolling upgrade of agents in this process, on loopback TCP. The older version is simulated by an agent
// that supports only the base command set (`withCommandSetVersion(options, 1)`); the current code supports
// version 2, which adds, among others, transactions and ephemeral keys.

const agents: Agent[] = []
const dataRoot = mkdtempSync(join(tmpdir(), 'conclave-upgrade-'))

afterEach(async () => {
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})
afterAll(() => rmSync(dataRoot, { recursive: true, force: true }))

async function agent(options: AgentOptions, version?: number): Promise<Agent> {
  const created = await createAgent(version === undefined ? options : withCommandSetVersion(options, version))
  agents.push(created)
  return created
}

async function stop(member: Agent): Promise<void> {
  agents.splice(agents.indexOf(member), 1)
  await member.stop()
}

function stateOf(member: Agent): StateMachine {
  const service = (member.libp2p as Libp2p<{ conclave: ConclaveService }>).services.conclave
  return (service as unknown as { replica: { state: StateMachine } }).replica.state
}

async function until(check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** A transaction: a command of version 2. */
function txn(member: Agent, key: string, value: unknown) {
  return member.consensus.transaction({
    compare: [{ key, target: 'exists', op: '==', value: false }],
    success: [{ type: 'put', key, value }],
  })
}

const decoder = new TextDecoder()

/** The replicated state without its applied index, which replicas reach at different moments. */
function comparable(member: Agent): string {
  const { appliedIndex: _, ...rest } = JSON.parse(decoder.decode(stateOf(member).snapshot()))
  return JSON.stringify(rest)
}

describe('a rolling upgrade', () => {
  it('refuses newer commands while an older replica is in, accepts them once all are upgraded, and never diverges', async () => {
    const options = (i: number): AgentOptions => ({ name: `u${i}`, dataDir: join(dataRoot, `u${i}`) })
    const group: Agent[] = []
    for (let i = 0; i < 3; i++) group.push(await agent(options(i), 1))
    await group[0].join({})
    for (const member of group.slice(1)) await member.join({ bootstrap: group[0].multiaddrs() })
    await until(async () => (await group[0].members()).filter(m => m.role === 'voter').length === 3)
    await group[1].consensus.propose('before', 1)

    // The old cluster runs the base set: a version-2 command is refused on the leader and when forwarded.
    const leader = group.find(member => member.isLeader())!
    const follower = group.find(member => !member.isLeader())!
    await expect(txn(leader, 't0', 1)).rejects.toMatchObject({
      name: 'UnsupportedVersionError',
      code: 'ERR_UNSUPPORTED_VERSION',
      message: expect.stringContaining('txn needs command-set version 2'),
    })
    await expect(follower.consensus.propose('e', 1, { ephemeral: true })).rejects.toBeInstanceOf(
      UnsupportedVersionError,
    )

    // One agent at a time: stopped, restarted on its data directory with the new code.
    for (let i = 0; i < 3; i++) {
      await stop(group[i])
      group[i] = await agent(options(i))
      const upgraded = group[i]
      await until(async () => {
        const members = await upgraded.members().catch(() => [])
        return members.length === 3 && members.every(member => member.status === 'alive')
      })
      await upgraded.consensus.propose(`upgraded/${i}`, i)
      if (i < 2) {
        // Older replicas remain: still refused, from the upgraded agent too, and nothing was written.
        await expect(txn(upgraded, `t${i + 1}`, 1)).rejects.toBeInstanceOf(UnsupportedVersionError)
        for (const member of group) expect(stateOf(member).clusterVersion).toBe(1)
        // What an operator sees during the upgrade: the version the cluster still runs.
        expect((await upgraded.health()).clusterVersion).toBe(1)
      }
    }

    // Every replica supports version 2 and up: the leader raises the cluster version, and the command goes in.
    await until(() => group.every(member => stateOf(member).clusterVersion === COMMAND_SET_VERSION))
    for (const member of group) expect((await member.health()).clusterVersion).toBe(COMMAND_SET_VERSION)
    expect(await txn(group[0], 't3', 'new')).toMatchObject({ succeeded: true })
    await group[2].consensus.propose('eph', 'x', { ephemeral: true })
    for (const member of group) {
      expect(await member.consensus.get('t3')).toBe('new')
      expect(await member.consensus.get('eph')).toBe('x')
      for (const key of ['t0', 't1', 't2']) expect(await member.consensus.get(key)).toBeUndefined()
    }
    // No divergence: the same replicated state everywhere, once each applied the same entries.
    await until(() => new Set(group.map(comparable)).size === 1)
  })

  it('an older agent that meets an entry above its version stops applying, says why, and fails its calls', async () => {
    const founder = await agent({ name: 'n0' })
    await founder.join({})
    expect(stateOf(founder).clusterVersion).toBe(COMMAND_SET_VERSION)
    await txn(founder, 'k', 1)
    const old = await agent({ name: 'old' }, 1)
    const joined = old.join({ bootstrap: founder.multiaddrs() }).then(
      () => undefined,
      (err: unknown) => err,
    )
    await until(() => stateOf(old).halted !== undefined)
    const halted = stateOf(old).halted!
    expect(halted.message).toMatch(
      /stopped applying the log at entry \d+: it holds \w+, which needs command-set version [2-9]; this agent supports command-set version 1/,
    )
    // Short of the entry: not applied, nor anything after it.
    expect(stateOf(old).clusterVersion).toBe(1)
    expect(stateOf(old).get('k')).toBeUndefined()
    await expect(old.consensus.propose('x', 1)).rejects.toBeInstanceOf(UnsupportedVersionError)
    await expect(old.consensus.get('k')).rejects.toBeInstanceOf(UnsupportedVersionError)
    // Its join may have returned first (the leader answered its registration before it caught up).
    const joinError = await joined
    if (joinError !== undefined) expect(joinError).toBeInstanceOf(UnsupportedVersionError)
    // The cluster goes on without it, and sees it fail as it would see a crashed agent (to be replaced).
    await founder.consensus.propose('after', 2)
    expect(await founder.consensus.get('after')).toBe(2)
    await until(
      async () => (await founder.members()).find(member => member.id === old.id)?.status !== 'alive',
    )
  })

  it('downgraded on a log a newer version wrote: join rejects at once with the reason, nothing applied past it', async () => {
    const dir = join(dataRoot, 'downgraded')
    const key = await generateKeyPair('Ed25519')
    const agentId = peerIdFromPrivateKey(key).toString()
    const storage = SqliteRaftStorage.open(dir)
    const entry = (index: number, command: unknown) => ({
      index,
      term: 1,
      type: 'normal' as const,
      data: new TextEncoder().encode(JSON.stringify({ ts: index, command })),
    })
    storage.setMeta(META_PEER_KEY, privateKeyToProtobuf(key))
    storage.setMeta(META_PEER_ID, new TextEncoder().encode(agentId))
    storage.setMeta(META_CLUSTER_ID, new TextEncoder().encode('c'))
    storage.setMeta(META_LEFT, new Uint8Array([0]))
    storage.write({
      hardState: { term: 1, vote: agentId, commit: 3 },
      entries: [
        entry(1, { type: 'put', key: 'a', value: 1 }),
        entry(2, { type: 'setClusterVersion', version: 2 }),
        entry(3, { type: 'put', key: 'b', value: 2 }),
      ],
      snapshot: {
        meta: { index: 0, term: 0, config: { voters: [agentId], nonVoters: [] } },
        data: new Uint8Array(),
      },
    })
    storage.close()
    const old = await agent({ name: 'downgraded', dataDir: dir }, 1)
    const started = Date.now()
    await expect(old.join({})).rejects.toThrow(
      /stopped applying the log at entry 2: it holds setClusterVersion/,
    )
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(stateOf(old).appliedIndex).toBe(1)
    expect(stateOf(old).get('b')).toBeUndefined()
  })
})
