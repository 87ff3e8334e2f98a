import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeEnvelope, encodeEnvelope, validateEnvelope } from '../../src/state/codec.ts'
import type { Envelope } from '../../src/state/commands.ts'
import { taskSpecProblem } from '../../src/state/task-spec.ts'

const encoder = new TextEncoder()
const decodeText = (text: string) => decodeEnvelope(encoder.encode(text))

describe('envelope codec', () => {
  it('round-trips every command shape', () => {
    const envelopes: Envelope[] = [
      { ts: 1, command: { type: 'put', key: 'a', value: { nested: [1, 'x', null, true] } } },
      {
        ts: 2,
        session: 's',
        seq: 0,
        ackedBelow: 0,
        command: { type: 'put', key: 'a', value: null, expectedRevision: 0 },
      },
      { ts: 3, command: { type: 'delete', key: 'a', expectedRevision: 4 } },
      { ts: 4, command: { type: 'openSession', sessionId: 's', agentId: 'a', ttlMs: 5000 } },
      { ts: 5, command: { type: 'keepAlive', sessionId: 's' } },
      { ts: 6, command: { type: 'closeSession', sessionId: 's' } },
      { ts: 7, command: { type: 'expireSession', sessionId: 's', reason: 'dead' } },
      {
        ts: 8,
        command: { type: 'lockAcquire', key: 'k', sessionId: 's', requestId: 'r', ttlMs: 10, wait: true },
      },
      { ts: 9, command: { type: 'lockRelease', key: 'k', sessionId: 's', fencingToken: 3 } },
      { ts: 10, command: { type: 'lockExtend', key: 'k', sessionId: 's', fencingToken: 3, ttlMs: 10 } },
      { ts: 11, command: { type: 'lockCancel', key: 'k', sessionId: 's', requestId: 'r' } },
      { ts: 12, command: { type: 'lockExpire', key: 'k', fencingToken: 3 } },
      { ts: 13, command: { type: 'campaign', name: 'e', sessionId: 's', agentId: 'a', requestId: 'r' } },
      { ts: 14, command: { type: 'resign', name: 'e', sessionId: 's' } },
    ]
    for (const envelope of envelopes) {
      expect(decodeEnvelope(encodeEnvelope(envelope))).toEqual({ ok: true, envelope })
    }
  })

  it('rejects malformed shapes with a typed error, never a throw', () => {
    const bad = [
      '',
      'not json',
      '[]',
      'null',
      '{"command":{"type":"keepAlive","sessionId":"s"}}', // no ts
      '{"ts":-1,"command":{"type":"keepAlive","sessionId":"s"}}',
      '{"ts":1.5,"command":{"type":"keepAlive","sessionId":"s"}}',
      '{"ts":1,"extra":1,"command":{"type":"keepAlive","sessionId":"s"}}',
      '{"ts":1,"seq":1,"command":{"type":"keepAlive","sessionId":"s"}}', // seq without session
      '{"ts":1,"session":"s","ackedBelow":1,"command":{"type":"keepAlive","sessionId":"s"}}', // ack without seq
      '{"ts":1,"session":"","seq":1,"command":{"type":"keepAlive","sessionId":"s"}}',
      '{"ts":1,"command":{"type":"keepAlive","sessionId":"s","extra":true}}',
      '{"ts":1,"command":{"type":"keepAlive","sessionId":""}}',
      '{"ts":1,"command":{"type":"keepAlive"}}',
      '{"ts":1,"command":{"type":"toString"}}',
      '{"ts":1,"command":{"type":"__proto__"}}',
      '{"ts":1,"command":{"type":"put","key":"k"}}', // no value
      '{"ts":1,"command":{"type":"put","key":"k","value":1e400}}', // Infinity
      '{"ts":1,"command":{"type":"put","key":"k","value":1,"expectedRevision":-1}}',
      '{"ts":1,"command":{"type":"openSession","sessionId":"s","agentId":"a","ttlMs":0}}',
      '{"ts":1,"command":{"type":"expireSession","sessionId":"s","reason":"bored"}}',
      '{"ts":1,"command":{"type":"lockAcquire","key":"k","sessionId":"s","requestId":"r","ttlMs":1,"wait":"yes"}}',
      '{"ts":1,"command":{"type":"lockRelease","key":"k","sessionId":"s","fencingToken":0}}',
      '{"ts":1,"command":"put"}',
      // Beyond 2^50: time + ttl or seq + 1 could leave the safe integers and make snapshots unrestorable.
      '{"ts":9007199254740991,"command":{"type":"keepAlive","sessionId":"s"}}',
      '{"ts":1,"command":{"type":"openSession","sessionId":"s","agentId":"a","ttlMs":9007199254740991}}',
      '{"ts":1,"session":"s","seq":9007199254740991,"command":{"type":"keepAlive","sessionId":"s"}}',
    ]
    for (const text of bad) {
      const decoded = decodeText(text)
      expect(decoded.ok, text).toBe(false)
    }
    expect(decodeEnvelope(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]))).toEqual({
      ok: false,
      error: 'entry is not UTF-8 JSON',
    })
  })

  it('rejects values nested deeper than the limit instead of overflowing the stack', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`
    const decoded = decodeText(`{"ts":1,"command":{"type":"put","key":"k","value":${deep}}}`)
    expect(decoded.ok).toBe(false)
  })

  it('treats keys holding undefined as absent, as JSON does', () => {
    const result = validateEnvelope({
      ts: 1,
      session: undefined,
      command: { type: 'delete', key: 'k', expectedRevision: undefined },
    })
    expect(result.ok).toBe(true)
  })

  it('never throws on arbitrary bytes or arbitrary JSON', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), bytes => {
        const decoded = decodeEnvelope(bytes)
        expect(typeof decoded.ok).toBe('boolean')
      }),
      { numRuns: 500 },
    )
    fc.assert(
      fc.property(fc.jsonValue(), value => {
        const decoded = decodeEnvelope(encoder.encode(JSON.stringify({ ts: 1, command: value })))
        expect(typeof decoded.ok).toBe('boolean')
      }),
      { numRuns: 500 },
    )
  })
})

describe('agent and task command codec', () => {
  it('round-trips every agent and task command shape', () => {
    const task = {
      id: 't',
      type: 'resize',
      priority: -2,
      payload: { image: 'x', sizes: [1, 2] },
      constraints: {
        requiredCapabilities: ['gpu'],
        preferredAgents: ['a', 'alpha'],
        excludeAgents: ['b'],
        maxRetries: 3,
        timeout: 0,
        affinity: 'repo',
      },
      deadline: 99,
    }
    const envelopes: Envelope[] = [
      {
        ts: 1,
        command: {
          type: 'registerAgent',
          agentId: 'a',
          name: 'alpha',
          sessionId: 's',
          addrs: ['/ip4/127.0.0.1/tcp/1'],
          capabilities: [],
          labels: { zone: 'x' },
          concurrency: 10,
        },
      },
      { ts: 2, command: { type: 'updateAgent', agentId: 'a', concurrency: 2 } },
      { ts: 3, command: { type: 'deregisterAgent', agentId: 'a' } },
      { ts: 4, session: 's', seq: 1, command: { type: 'submitTask', task } },
      { ts: 5, command: { type: 'claimTask', taskId: 't', agentId: 'a', sessionId: 's' } },
      { ts: 6, command: { type: 'completeTask', taskId: 't', attempt: 1, fencingToken: 5, result: null } },
      { ts: 7, command: { type: 'failTask', taskId: 't', attempt: 1, fencingToken: 5, error: '' } },
      { ts: 8, command: { type: 'stealTask', taskId: 't', fromAgentId: 'a', toAgentId: 'b' } },
      { ts: 9, command: { type: 'timeoutTask', taskId: 't', attempt: 2 } },
      { ts: 10, command: { type: 'retryDue', taskId: 't' } },
      { ts: 11, command: { type: 'expireTask', taskId: 't' } },
      { ts: 12, command: { type: 'cancelTask', taskId: 't' } },
    ]
    for (const envelope of envelopes) {
      expect(decodeEnvelope(encodeEnvelope(envelope))).toEqual({ ok: true, envelope })
    }
  })

  it('holds a task to the same rules as the task API: a priority must be a safe integer', () => {
    const task = {
      id: 't',
      type: 'resize',
      priority: 1,
      payload: {},
      constraints: { requiredCapabilities: [], maxRetries: 3, timeout: 0 },
    }
    const submit = (priority: number) =>
      decodeEnvelope(encodeEnvelope({ ts: 1, command: { type: 'submitTask', task: { ...task, priority } } }))
    expect(submit(-7).ok).toBe(true)
    for (const priority of [1.5, Number.MAX_SAFE_INTEGER + 1]) {
      expect(submit(priority)).toEqual({ ok: false, error: 'command submitTask has an invalid task' })
    }
    expect(taskSpecProblem({ ...task, priority: 1.5 })).toBe('priority must be an integer')
  })
})
