/**
 * A worker acts only for itself (least-privilege issue, attack 2), over real streams with SPIFFE identities:
 * a worker with `runTask` forwards to the leader, from its own node, the completion of a task running on
 * another worker, with the attempt and fencing token every member can read. Before, the leader took it (the
 * forged result won, and the real worker's completion failed as stale); now it is refused, and the real
 * worker's completion is accepted.
 */

import { afterEach, describe, expect, it } from 'vitest'
import { FORWARD_PROTOCOL } from '../../src/agent/node/proposer.ts'
import type { Agent } from '../../src/index.ts'
import { FrameDecoder } from '../../src/net/frame.ts'
import { decodeRpcFrame, encodeRpcFrame, type RpcFrame } from '../../src/net/rpc-codec.ts'
import { type Command, encodeEnvelope } from '../../src/state/index.ts'
import { cluster, securityFor, TD, trustDomain, until } from '../security/agents.ts'

const POLICY = [
  { ids: [`spiffe://${TD}/voter/*`], allow: '*' as const },
  { ids: [`spiffe://${TD}/worker/*`], allow: ['join' as const, 'runTask' as const, 'lock' as const] },
]

const agents: Agent[] = []
afterEach(async () => {
  await Promise.all(agents.map(agent => agent.stop()))
  agents.length = 0
})

/** Forwards `command` to `leader` as `from`'s own node would, and returns the answer frame. */
async function forwardFrom(from: Agent, leader: Agent, command: Command): Promise<RpcFrame> {
  const stream = await from.libp2p.dialProtocol(leader.libp2p.peerId, FORWARD_PROTOCOL)
  const decoder = new FrameDecoder()
  const answer = new Promise<RpcFrame>((resolve, reject) => {
    stream.addEventListener('message', evt => {
      decoder.push(evt.data)
      const frame = decoder.next()
      if (frame !== undefined) resolve(decodeRpcFrame(frame))
    })
    stream.addEventListener('close', () => reject(new Error('forward stream closed without an answer')))
  })
  stream.send(encodeRpcFrame({ kind: 'request', id: 1, body: encodeEnvelope({ ts: 0, command }) }))
  try {
    return await answer
  } finally {
    stream.abort(new Error('done'))
  }
}

describe('task completion only by the assignee', () => {
  it("refuses a worker's completion of another worker's task, and takes the real one", async () => {
    const td = trustDomain()
    const [leader, w1, w2] = await cluster(agents, [
      { name: 'a', security: securityFor(td, 'voter/a', { policy: POLICY }) },
      { name: 'w1', security: securityFor(td, 'worker/w1', { policy: POLICY }) },
      { name: 'w2', security: securityFor(td, 'worker/w2', { policy: POLICY }) },
    ])
    expect(leader.isLeader()).toBe(true)
    await until(async () => (await leader.members()).length === 3, 'three members')
    await leader.tasks.submit({ id: 't1', type: 'job', constraints: { preferredAgents: ['w1'] } })
    const claimed = await w1.tasks.claim('t1')
    const attempt = { taskId: 't1', attempt: claimed.attempt, fencingToken: Number(claimed.fencingToken) }

    // Naming no agent, or the real worker, is refused at the leader's gate.
    for (const agentId of [undefined, w1.id]) {
      const command = { type: 'completeTask', ...attempt, result: 'forged', agentId } as Command
      const answer = await forwardFrom(w2, leader, command)
      expect(answer).toMatchObject({ kind: 'error', errorName: 'UnauthorizedError' })
    }
    // Naming itself, it passes the gate, and the state machine holds the attempt to its assignee.
    for (const command of [
      { type: 'completeTask', ...attempt, result: 'forged', agentId: w2.id },
      { type: 'failTask', ...attempt, error: 'forged', agentId: w2.id },
    ] as Command[]) {
      const answer = await forwardFrom(w2, leader, command)
      expect(answer.kind).toBe('response')
      if (answer.kind !== 'response') return
      expect(JSON.parse(new TextDecoder().decode(answer.body))).toMatchObject({
        type: 'error',
        code: 'NotAssignee',
      })
    }
    expect(await leader.tasks.status('t1')).toMatchObject({ state: 'running', attempt: claimed.attempt })

    await w1.tasks.complete('t1', 'real')
    expect(await leader.tasks.status('t1')).toMatchObject({ state: 'completed', result: 'real' })
  })
})
