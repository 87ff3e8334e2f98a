/**
 * `Directory.members()` joins the configuration, the replicated registry and the membership view. Unit test of
 * that join alone, with the three sources stubbed.
 */
import { describe, expect, it } from 'vitest'
import { Directory, type DirectoryInit } from '../../../src/agent/cluster/directory.ts'
import type { MemberStatus } from '../../../src/swim/types.ts'

function directory(view: Record<string, MemberStatus>, registered: string[]): Directory {
  const agents = registered.map(agentId => ({
    agentId,
    name: agentId,
    sessionId: `s-${agentId}`,
    alive: true,
    addrs: [],
    capabilities: [],
    labels: {},
    updatedAt: 0,
  }))
  const state = {
    agents: () => agents,
    agent: (id: string) => agents.find(agent => agent.agentId === id),
    session: () => undefined,
    agentLoad: () => undefined,
  }
  const init = {
    selfId: 'self',
    replica: { state, onEvent: () => {}, onRestore: () => {} },
    membership: {
      member: (id: string) => (view[id] === undefined ? undefined : { id, status: view[id], lastSeen: 0 }),
      members: () => Object.entries(view).map(([id, status]) => ({ id, status, lastSeen: 0 })),
      status: (id: string) => view[id],
      downFor: () => undefined,
      now: () => 0,
    },
    security: { spiffeId: undefined, gate: { spiffeIdOf: () => undefined } },
    logger: { forComponent: () => Object.assign(() => {}, { error: () => {}, trace: () => {} }) },
    listDeadForMs: 1_000,
    config: () => ({ voters: ['self'], nonVoters: [] }),
  }
  return new Directory(init as unknown as DirectoryInit)
}

describe('Directory.members()', () => {
  it('lists registered members the view holds alive, and not one the view says left', () => {
    const listed = directory({ self: 'alive', a: 'alive', gone: 'left' }, ['self', 'a', 'gone']).members()
    expect(listed.map(member => member.id).sort()).toEqual(['a', 'self'])
  })

  it('lists a registered member the view has not met yet', () => {
    expect(
      directory({ self: 'alive' }, ['self', 'b'])
        .members()
        .map(member => member.id)
        .sort(),
    ).toEqual(['b', 'self'])
  })
})
