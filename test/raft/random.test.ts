/**
 * A seeded randomized run: drops, duplicates, reordering, partitions, crashes and restarts, compaction,
 * membership changes and leadership transfers, with Raft's safety properties checked after every step and
 * liveness checked once the faults stop. A failing seed is in the test name and replays exactly.
 */
import { describe, expect, test } from 'vitest'
import type { RaftNode } from '../../src/raft/raft.ts'
import type { ConfigChange, Message, RaftOptions, Ready } from '../../src/raft/types.ts'
import { bytes, Cluster, emptyState, seededRandom, text } from './harness.ts'

interface Observed {
  term: number
  data: string
}

function run(seed: number, steps: number, variant: Partial<RaftOptions> = {}): void {
  const random = seededRandom(seed)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]
  const founders = ['a', 'b', 'c', 'd', 'e']
  const spares = ['f', 'g']
  const options = { snapshotChunkBytes: 64, maxMessageBytes: 200, maxInflightMessages: 4, ...variant }
  const cluster = Cluster.create(founders, options, seed)
  const down = new Set<string>()
  let pool: Message[] = []
  const leaderOfTerm = new Map<number, string>()
  const appliedAt = new Map<number, Observed>()
  const lastCommit = new Map<RaftNode, number>()
  const readFloor = new Map<string, number>()
  let proposals = 0
  let readCount = 0

  const fail = (message: string) => {
    throw new Error(`seed ${seed}: ${message}`)
  }

  const observe = (id: string, ready: Ready) => {
    for (const entry of ready.committed) {
      const seen = appliedAt.get(entry.index)
      const data = text(entry.data)
      if (seen && (seen.term !== entry.term || seen.data !== data)) {
        fail(
          `${id} applied (${entry.term}, ${data}) at ${entry.index}, another node applied (${seen.term}, ${seen.data})`,
        )
      }
      appliedAt.set(entry.index, { term: entry.term, data })
    }
    for (const read of ready.readStates) {
      const floor = readFloor.get(read.context)
      if (floor === undefined) fail(`unknown read ${read.context}`)
      else if (read.index < (floor as number))
        fail(`read ${read.context} at ${read.index} misses commit ${floor}`)
    }
  }

  const maxCommit = () => Math.max(...[...cluster.nodes.values()].map(n => n.raft.status().commit))

  const collect = () => {
    for (const id of cluster.nodes.keys()) {
      if (down.has(id)) continue
      const ready = cluster.process(id)
      if (ready) observe(id, ready)
    }
    pool.push(...cluster.queue)
    cluster.queue = []
  }

  const check = () => {
    for (const node of cluster.nodes.values()) {
      if (down.has(node.id)) continue
      const status = node.raft.status()
      if (status.role === 'leader') {
        const other = leaderOfTerm.get(status.term)
        if (other !== undefined && other !== node.id)
          fail(`two leaders in term ${status.term}: ${other}, ${node.id}`)
        leaderOfTerm.set(status.term, node.id)
      }
      const previous = lastCommit.get(node.raft) ?? 0
      if (status.commit < previous) fail(`${node.id} commit went back from ${previous} to ${status.commit}`)
      lastCommit.set(node.raft, status.commit)
    }
  }

  const leaders = () => cluster.leaders().filter(id => !down.has(id))

  for (let step = 0; step < steps; step++) {
    const roll = random()
    const ids = [...cluster.nodes.keys()]
    if (roll < 0.45) {
      if (pool.length > 0) {
        const index = Math.floor(random() * pool.length)
        const message = pool[index]
        const fate = random()
        if (fate < 0.9) pool.splice(index, 1) // else: delivered now and again later (duplicate)
        if (fate > 0.05 && !down.has(message.to)) cluster.deliver([message])
      }
    } else if (roll < 0.65) {
      const id = pick(ids)
      if (!down.has(id)) cluster.raft(id).tick()
    } else if (roll < 0.8) {
      for (const id of leaders()) {
        try {
          cluster.raft(id).propose(bytes(`p${proposals}`))
          proposals++
        } catch {
          // not accepted (transfer in progress, removed leader, too much uncommitted): fine
        }
      }
    } else if (roll < 0.84) {
      const id = pick(ids)
      if (!down.has(id)) {
        const context = `${id}-r${readCount++}`
        readFloor.set(context, maxCommit())
        cluster.raft(id).readIndex(context)
      }
    } else if (roll < 0.86) {
      const id = pick(ids)
      if (!down.has(id)) cluster.compact(id)
    } else if (roll < 0.875) {
      const id = pick(ids)
      if (down.has(id)) {
        cluster.restart(id)
        down.delete(id)
      } else if (down.size < 2) {
        cluster.crash(id)
        down.add(id)
        pool = pool.filter(m => m.to !== id)
      }
    } else if (roll < 0.89) {
      cluster.heal()
      if (random() < 0.6) {
        const shuffled = [...ids].sort(() => random() - 0.5)
        const cut = 1 + Math.floor(random() * (shuffled.length - 1))
        cluster.partition(shuffled.slice(0, cut), shuffled.slice(cut))
      }
    } else if (roll < 0.9) {
      const id = leaders()[0]
      if (id !== undefined) {
        const config = cluster.raft(id).status().config
        const outside = [...founders, ...spares].filter(
          n => !config.voters.includes(n) && !config.nonVoters.includes(n),
        )
        const changes: ConfigChange[] = []
        for (const n of outside) changes.push({ type: 'addNonVoter', node: n })
        for (const n of config.nonVoters)
          changes.push({ type: 'promote', node: n }, { type: 'removeNonVoter', node: n })
        if (config.voters.length > 3)
          for (const n of config.voters) changes.push({ type: 'removeVoter', node: n })
        const change = pick(changes)
        if (change) {
          try {
            cluster.raft(id).proposeConfigChange(change)
            if (change.type === 'addNonVoter' && !cluster.nodes.has(change.node)) {
              cluster.add(change.node, emptyState(), options, seed * 31 + change.node.charCodeAt(0))
            }
          } catch {
            // refused (pending change): fine
          }
        }
      }
    } else if (roll < 0.905) {
      const id = leaders()[0]
      if (id !== undefined) {
        const voters = cluster
          .raft(id)
          .status()
          .config.voters.filter(v => v !== id)
        if (voters.length > 0) cluster.raft(id).transferLeadership(pick(voters))
      }
    }
    pool = pool.filter(m => !cluster.dropped(m))
    collect()
    check()
  }

  // Liveness: faults stop, everyone restarts; a leader emerges and a new entry reaches every member.
  cluster.heal()
  for (const id of down) cluster.restart(id)
  down.clear()
  for (const message of pool) cluster.deliver([message])
  pool = []
  let committed = false
  for (let round = 0; round < 300 && !committed; round++) {
    cluster.tickAll(1)
    for (const node of cluster.nodes.values())
      for (const ready of node.readies.splice(0)) observe(node.id, ready)
    check()
    const leader = leaders()[0]
    if (leader !== undefined && round % 10 === 0) {
      try {
        cluster.raft(leader).propose(bytes('final'))
      } catch {
        // try again later
      }
    }
    const config = leader !== undefined ? cluster.raft(leader).status().config : undefined
    committed =
      config !== undefined &&
      [...config.voters, ...config.nonVoters].every(id => cluster.node(id).appliedData.includes('final'))
  }
  if (!committed) fail('no progress after the faults stopped')
  expect(appliedAt.size).toBeGreaterThan(0)
}

describe('randomized runs with faults', () => {
  const variants: [string, Partial<RaftOptions>][] = [
    ['defaults', {}],
    ['no pre-vote, no check-quorum', { preVote: false, checkQuorum: false }],
    [
      'one message in flight, slow heartbeats',
      { maxInflightMessages: 1, heartbeatTicks: 3, electionTicks: 12 },
    ],
  ]
  for (const [name, variant] of variants) {
    const seeds = Array.from({ length: 8 }, (_, i) => i + 1)
    test.each(seeds)(`${name}: seed %i keeps every safety property and recovers`, seed => {
      run(seed, 3000, variant)
    })
  }
})
