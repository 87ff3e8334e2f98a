/** Each test-only fault switch breaks exactly the rule it names (so the simulator's checkers can be shown to fire). */
import { describe, expect, test } from 'vitest'
import type { Config } from '../../src/raft/types.ts'
import { Cluster, stateWithLog } from './harness.ts'

describe('bugs switches', () => {
  test('voteIgnoresLog: a candidate with a stale log wins and commits another entry at a committed index', () => {
    const run = (voteIgnoresLog: boolean) => {
      const cluster = Cluster.create(['a', 'b', 'c'], { preVote: false, bugs: { voteIgnoresLog } })
      cluster.elect('a')
      cluster.isolate('c')
      cluster.propose('committed')
      cluster.heal()
      cluster.crash('a')
      cluster.tick('b', 10)
      cluster.elect('c')
      return cluster
    }
    expect(run(false).leaders()).toEqual([])
    const broken = run(true)
    expect(broken.leader()).toBe('c')
    broken.tickAll(2)
    // 'committed' was committed at index 2 on a and b; c's log has its own no-op there, also committed:
    // two different entries committed at one index.
    expect(broken.raft('c').status().commit).toBe(2)
    expect(broken.node('c').storage.entries[1].term).toBe(2)
    expect(broken.node('b').storage.entries[1].term).toBe(1)
    expect(broken.node('b').appliedData).toEqual(['committed'])
    expect(broken.node('c').appliedData).toEqual([])
  })

  test('commitPreviousTerm: figure 8, an earlier-term entry is committed by counting replicas', () => {
    const config: Config = { voters: ['s1', 's2', 's3'], nonVoters: [] }
    const run = (commitPreviousTerm: boolean) => {
      const cluster = new Cluster()
      const options = { preVote: false, bugs: { commitPreviousTerm } }
      cluster.add('s1', stateWithLog(config, [1, 2], 3), options, 1)
      cluster.add('s2', stateWithLog(config, [1], 3), options, 2)
      cluster.add('s3', stateWithLog(config, [1], 3), options, 3)
      cluster.raft('s1').campaign()
      cluster.deliver(cluster.collect())
      cluster.deliver(cluster.collect())
      // Entry 2 (term 2) reaches s2, but not s1's no-op of term 4.
      for (let i = 0; i < 4; i++) {
        for (const m of cluster.collect()) {
          if (m.type === 'append' && m.to === 's2')
            cluster.deliver([{ ...m, entries: m.entries.filter(e => e.index <= 2) }])
          else if (m.to === 's1') cluster.deliver([m])
        }
      }
      return cluster.raft('s1').status().commit
    }
    expect(run(false)).toBe(0)
    expect(run(true)).toBe(2)
  })

  test('staleRead: an isolated old leader serves a read at once, at a stale index', () => {
    const run = (staleRead: boolean) => {
      const cluster = Cluster.create(['a', 'b', 'c'], { bugs: { staleRead } })
      cluster.elect('a')
      cluster.propose('x')
      cluster.isolate('a')
      for (let i = 0; i < 30 && !cluster.leaders().some(id => id !== 'a'); i++) cluster.tickAll()
      const leader = cluster.leaders().find(id => id !== 'a') as string
      cluster.propose('y', leader)
      // a may still think it leads (here it does not tick, so check-quorum has not removed it).
      cluster.raft('a').readIndex('r')
      cluster.deliverAll()
      return { states: cluster.node('a').readStates, newCommit: cluster.raft(leader).status().commit }
    }
    expect(run(false).states).toEqual([])
    const broken = run(true)
    expect(broken.states).toHaveLength(1)
    expect(broken.states[0].index).toBeLessThan(broken.newCommit)
  })

  test('readAckAnyQuorum: with 5 voters, an old leader and one follower cut off together serve a stale read', () => {
    const run = (readAckAnyQuorum: boolean) => {
      const cluster = Cluster.create(['a', 'b', 'c', 'd', 'e'], {
        checkQuorum: false,
        bugs: { readAckAnyQuorum },
      })
      cluster.elect('a')
      cluster.propose('x')
      cluster.deliverAll()
      cluster.partition(['a', 'b'], ['c', 'd', 'e'])
      cluster.elect('c')
      cluster.propose('y', 'c')
      cluster.deliverAll()
      // b still follows a (it heard of no election): its read goes to a, which answers at once with the bug.
      cluster.raft('b').readIndex('r')
      cluster.deliverAll()
      return { states: cluster.node('b').readStates, newCommit: cluster.raft('c').status().commit }
    }
    expect(run(false).states).toEqual([])
    const broken = run(true)
    expect(broken.states).toHaveLength(1)
    expect(broken.states[0].index).toBeLessThan(broken.newCommit)
  })
})
