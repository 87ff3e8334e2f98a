import { describe, expect, it } from 'vitest'
import { type ClaimContext, MAX_INCARNATION_LEAD, vetMessage } from '../../src/swim/claims.ts'
import { Swim } from '../../src/swim/swim.ts'
import type { MemberRecord, PushPullEntry, SwimMessage } from '../../src/swim/types.ts'
import { localRecord } from './harness.ts'

const NOW = 1_800_000_000_000
const SELF = 'self'
const VIEW = new Map([
  [SELF, NOW],
  ['accuser', NOW],
  ['victim', NOW + 5],
])

function context(accusers: readonly string[] = ['accuser']): ClaimContext {
  return {
    self: SELF,
    mayAccuse: id => accusers.includes(id),
    incarnationOf: id => VIEW.get(id),
    wallNow: NOW,
  }
}

function record(id: string, incarnation: number): MemberRecord {
  return { ...localRecord(id), incarnation }
}

function entry(id: string, incarnation: number, status: PushPullEntry['status']): PushPullEntry {
  return { ...record(id, incarnation), status }
}

function kept(message: SwimMessage, from: string, accusers?: readonly string[]): SwimMessage {
  return vetMessage(message, from, context(accusers)).message
}

describe('SWIM claims', () => {
  it('takes alive and left only from the member they are about', () => {
    const gossip: SwimMessage = {
      type: 'gossip',
      updates: [
        { type: 'alive', member: record('victim', NOW + 6) },
        { type: 'left', id: 'victim', incarnation: NOW + 6 },
        { type: 'alive', member: record('accuser', NOW + 1) },
      ],
    }
    expect(kept(gossip, 'accuser')).toEqual({ type: 'gossip', updates: [gossip.updates[2]] })
    expect(kept(gossip, 'victim')).toEqual({ type: 'gossip', updates: gossip.updates.slice(0, 2) })
  })

  it('takes accusations only from accusers, about members of the view, and never about the sender', () => {
    const dead: SwimMessage = {
      type: 'gossip',
      updates: [{ type: 'dead', id: 'victim', incarnation: NOW + 5, from: 'accuser' }],
    }
    expect(kept(dead, 'accuser')).toEqual(dead)
    expect(vetMessage(dead, 'stranger', context()).refused).toBe(1)
    // Republished under another accuser's name: both must be accusers.
    expect(kept(dead, 'other', ['other'])).toEqual({ type: 'gossip', updates: [] })
    expect(kept(dead, 'other', ['other', 'accuser'])).toEqual(dead)
    expect(kept(dead, 'victim', ['victim', 'accuser'])).toEqual({ type: 'gossip', updates: [] })
    const unknown: SwimMessage = {
      type: 'gossip',
      updates: [{ type: 'suspect', id: 'ghost', incarnation: 1, from: 'accuser' }],
    }
    expect(kept(unknown, 'accuser')).toEqual({ type: 'gossip', updates: [] })
    const ping: SwimMessage = { type: 'ping', seq: 1, target: SELF, suspectIncarnation: NOW }
    expect(kept(ping, 'accuser')).toEqual(ping)
    expect(kept(ping, 'stranger')).toEqual({ type: 'ping', seq: 1, target: SELF })
  })

  it('refuses incarnations out of bounds, so a refutation always encodes', () => {
    const at = (incarnation: number): SwimMessage => ({
      type: 'gossip',
      updates: [{ type: 'dead', id: SELF, incarnation, from: 'accuser' }],
    })
    const ceiling = NOW + MAX_INCARNATION_LEAD
    expect(vetMessage(at(ceiling), 'accuser', context()).refused).toBe(0)
    expect(vetMessage(at(ceiling + 1), 'accuser', context()).refused).toBe(1)
    expect(vetMessage(at(Number.MAX_SAFE_INTEGER), 'accuser', context()).refused).toBe(1)
    // A member's own claims may go as far above its own incarnation, never an accusation above the clock's.
    const own: SwimMessage = {
      type: 'alive',
      member: record('victim', NOW + 5 + MAX_INCARNATION_LEAD),
    } as never
    expect(kept({ type: 'gossip', updates: [own as never] }, 'victim')).toEqual({
      type: 'gossip',
      updates: [own],
    })
    expect(
      vetMessage(
        { type: 'gossip', updates: [{ type: 'left', id: 'victim', incarnation: 2 ** 53 - 1 }] },
        'victim',
        context(),
      ).refused,
    ).toBe(1)
    // The refutation of the highest accusation still encodes.
    expect(ceiling + 1).toBeLessThan(Number.MAX_SAFE_INTEGER)
  })

  it('merges by push-pull only the sender itself and accusations; names the others to ask directly', () => {
    const message: SwimMessage = {
      type: 'pushPull',
      reply: true,
      members: [
        entry('accuser', NOW + 1, 'alive'),
        entry('victim', NOW + 9, 'left'),
        entry('victim', NOW + 9, 'alive'),
        entry('victim', NOW + 9, 'dead'),
        entry('newcomer', NOW, 'alive'),
        entry(SELF, NOW + 1, 'alive'),
      ],
    }
    const vetted = vetMessage(message, 'accuser', context())
    expect(vetted.message).toEqual({ ...message, members: [message.members[0], message.members[3]] })
    expect(vetted.named.map(entry => entry.id)).toEqual(['newcomer'])
    expect(vetMessage(message, 'stranger', context()).message).toEqual({ ...message, members: [] })
  })
})

describe('the view cap', () => {
  it('adds no member past maxMembers', () => {
    const swim = new Swim({
      self: localRecord('a'),
      incarnation: 1,
      now: 0,
      random: () => 0.5,
      config: { maxMembers: 3 },
    })
    swim.receive('x', {
      type: 'pushPull',
      reply: true,
      members: ['b', 'c', 'd', 'e'].map(id => entry(id, 1, id === 'e' ? 'dead' : 'alive')),
    })
    expect(swim.viewSize()).toBe(3)
    expect(swim.members().map(member => member.id)).toEqual(['a', 'b', 'c'])
  })
})
