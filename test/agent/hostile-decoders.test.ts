/**
 * Property tests of the decoders that read what other peers send and had none: work adverts (gossipsub),
 * forwarded command envelopes, client protocol requests (admin requests are fuzzed on live streams, in
 * hostile-streams.test.ts). Whatever the bytes, each either yields a valid value or fails with its typed
 * error; never another exception, never a hang.
 */

import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { type ClientOp, ClientProtocolServer } from '../../src/agent/api/client-protocol.ts'
import {
  decodeWorkAdvert,
  encodeWorkAdvert,
  MAX_ADVERT_BYTES,
  MAX_SURPLUS,
  type WorkAdvert,
} from '../../src/agent/api/work-stealing-codec.ts'
import { serveForward } from '../../src/agent/node/proposer.ts'
import { checkValue } from '../../src/agent/validate.ts'
import type { ConclaveApi } from '../../src/api.ts'
import { AbortError, ConclaveError, InvalidArgumentError, NotFoundError } from '../../src/errors.ts'
import { FrameError } from '../../src/net/frame.ts'
import { decodeEnvelope, encodeEnvelope } from '../../src/state/codec.ts'
import type { Envelope } from '../../src/state/commands.ts'
import { systemScheduler } from '../../src/time/system-scheduler.ts'
import { VirtualScheduler } from '../../src/time/virtual-scheduler.ts'

const encoder = new TextEncoder()
const json = (value: unknown) => encoder.encode(JSON.stringify(value))

/** Runs `decode` and returns its value, or undefined if it threw `FrameError`; anything else fails. */
function decodeOrFrameError<T>(decode: (bytes: Uint8Array) => T, bytes: Uint8Array): T | undefined {
  try {
    return decode(bytes)
  } catch (err) {
    expect(err).toBeInstanceOf(FrameError)
    return undefined
  }
}

/** Random edits of valid bytes: flips, truncations, insertions. */
function mutated(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(valid, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(2)), { maxLength: 4 }))
    .map(([bytes, edits]) => {
      let out = Array.from(bytes)
      for (const [at, byte, kind] of edits) {
        const i = out.length === 0 ? 0 : at % out.length
        if (kind === 0) out[i] = byte
        else if (kind === 1) out = out.slice(0, i)
        else out.splice(i, 0, byte)
      }
      return Uint8Array.from(out)
    })
}

/** JSON-ish objects around a set of known field names: the shapes a decoder must look at closely. */
function objectsAround(fields: readonly string[]): fc.Arbitrary<unknown> {
  return fc.dictionary(
    fc.oneof(fc.constantFrom(...fields), fc.string({ maxLength: 8 })),
    fc.jsonValue({ maxDepth: 2 }),
    {
      maxKeys: fields.length + 1,
    },
  )
}

const idArb = fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' })

describe('work advert codec', () => {
  const advertArb: fc.Arbitrary<WorkAdvert> = fc.record(
    {
      agentId: idArb,
      load: fc.double({ min: 0, max: 1e6, noNaN: true }),
      surplus: fc.uniqueArray(idArb, { maxLength: 20 }),
    },
    { noNullPrototype: true },
  )

  it('round-trips adverts', () => {
    fc.assert(
      fc.property(advertArb, advert => {
        expect(decodeWorkAdvert(encodeWorkAdvert(advert))).toStrictEqual({ ...advert, load: advert.load + 0 })
      }),
    )
  })

  it('yields a valid advert or a FrameError for any bytes', () => {
    const check = (bytes: Uint8Array): void => {
      const advert = decodeOrFrameError(decodeWorkAdvert, bytes)
      if (advert === undefined) return
      expect(Object.keys(advert).sort()).toEqual(['agentId', 'load', 'surplus'])
      expect(advert.agentId.length).toBeGreaterThan(0)
      expect(Number.isFinite(advert.load) && advert.load >= 0).toBe(true)
      expect(advert.surplus.length).toBeLessThanOrEqual(MAX_SURPLUS)
      expect(new Set(advert.surplus).size).toBe(advert.surplus.length)
      // What decodes re-encodes to something that decodes the same.
      expect(decodeWorkAdvert(encodeWorkAdvert(advert))).toStrictEqual(advert)
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 128 }), check), { numRuns: 2000 })
    fc.assert(fc.property(objectsAround(['agentId', 'load', 'surplus']).map(json), check), { numRuns: 2000 })
    fc.assert(fc.property(mutated(advertArb.map(encodeWorkAdvert)), check), { numRuns: 2000 })
  })

  it('refuses what is over its bounds', () => {
    const refuse = (value: unknown) => expect(() => decodeWorkAdvert(json(value))).toThrow(FrameError)
    refuse({ agentId: 'a', load: 0, surplus: Array.from({ length: MAX_SURPLUS + 1 }, (_, i) => `t${i}`) })
    refuse({ agentId: 'a'.repeat(1025), load: 0, surplus: [] })
    refuse({ agentId: 'a', load: -1, surplus: [] })
    refuse({ agentId: 'a', load: 0, surplus: [], extra: true })
    refuse({ agentId: '\ud800', load: 0, surplus: [] })
    expect(() => decodeWorkAdvert(new Uint8Array(MAX_ADVERT_BYTES + 1).fill(0x20))).toThrow(FrameError)
    expect(() => decodeWorkAdvert('{}' as unknown as Uint8Array)).toThrow(FrameError)
  })
})

describe('forwarded command envelopes', () => {
  const proposed: Uint8Array[] = []
  const context = {
    selfId: 'leader',
    leader: () => 'leader',
    scheduler: new VirtualScheduler({ wallStart: 1_000 }),
    proposeLocal: async (data: Uint8Array) => {
      proposed.push(data)
      return { type: 'ok' }
    },
  }
  const envelopeArb: fc.Arbitrary<Envelope> = fc.oneof(
    fc.record(
      {
        ts: fc.nat(),
        command: fc.record({ type: fc.constant('put' as const), key: idArb, value: fc.jsonValue() }),
      },
      { noNullPrototype: true },
    ),
    fc.record(
      { ts: fc.nat(), command: fc.record({ type: fc.constant('keepAlive' as const), sessionId: idArb }) },
      { noNullPrototype: true },
    ),
  ) as fc.Arbitrary<Envelope>

  /** Serves `bytes`: what was proposed must be a valid envelope stamped by the leader; any refusal typed. */
  async function check(bytes: Uint8Array): Promise<void> {
    proposed.length = 0
    try {
      await serveForward(context, bytes)
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidArgumentError)
      expect(proposed).toEqual([])
      return
    }
    expect(proposed).toHaveLength(1)
    const decoded = decodeEnvelope(proposed[0])
    expect(decoded.ok).toBe(true)
    if (decoded.ok) expect(decoded.envelope.ts).toBe(1_000)
  }

  it('proposes a valid envelope or refuses with InvalidArgumentError, for any bytes', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 128 }), check), { numRuns: 1000 })
    await fc.assert(fc.asyncProperty(objectsAround(['ts', 'command', 'session', 'seq']).map(json), check), {
      numRuns: 1000,
    })
    await fc.assert(fc.asyncProperty(mutated(envelopeArb.map(encodeEnvelope)), check), { numRuns: 2000 })
  })
})

describe('client protocol requests', () => {
  const closed = new AbortController()
  afterAll(() => closed.abort())
  const emptyWatch = (): AsyncIterable<never> => ({
    [Symbol.asyncIterator]: () => ({
      next: async () => ({ done: true, value: undefined }),
      return: async () => ({ done: true, value: undefined }),
    }),
  })
  const election = {
    campaign: () => Promise.reject(new AbortError()),
    resign: async () => {},
    watch: emptyWatch,
    term: () => 0,
  }
  // The API's answers are canned; its argument checks are the real ones where the server relies on them.
  const api = {
    id: 'self',
    name: 'self',
    multiaddrs: () => [],
    isLeader: () => false,
    election,
    elections: () => election,
    consensus: {
      propose: async (_key: string, value: unknown) => {
        checkValue(value)
        return { revision: 1 }
      },
      get: async () => undefined,
      delete: async () => ({ revision: 1 }),
      watch: emptyWatch,
    },
    locks: { acquire: () => Promise.reject(new AbortError()) },
    tasks: {
      submit: async () => ({ id: 't', state: 'pending' }),
      status: async () => {
        throw new NotFoundError()
      },
    },
    health: async () => ({ healthy: true, leader: '', memberCount: 1, healthyCount: 1, members: [] }),
    members: async () => [],
  } as unknown as ConclaveApi
  const server = new ClientProtocolServer({
    api,
    currentRevision: () => 0,
    closed: closed.signal,
    scheduler: systemScheduler,
    graceMs: 10,
  })
  const ops: ClientOp[] = [
    'status',
    'kv.put',
    'kv.get',
    'kv.delete',
    'kv.events',
    'lock.acquire',
    'lock.extend',
    'lock.release',
    'task.submit',
    'task.status',
    'elect.campaign',
    'elect.extend',
    'elect.resign',
  ]
  const argNames = [
    'key',
    'value',
    'expectedRevision',
    'consistency',
    'prefix',
    'fromRevision',
    'waitMs',
    'maxEvents',
    'ttl',
    'handle',
    'task',
    'id',
    'name',
  ]

  /** Handles `bytes`; the answer must be JSON text, any refusal a ConclaveError; 2 s bounds a hang. */
  async function check(bytes: Uint8Array): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const hang = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('client request did not settle in 2 s')), 2_000)
    })
    try {
      const answer = await Promise.race([server.handle(bytes), hang])
      expect(() => JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(answer))).not.toThrow()
    } catch (err) {
      if (!(err instanceof ConclaveError)) throw err
    } finally {
      clearTimeout(timer)
    }
  }

  it('answers JSON or refuses with a ConclaveError, for any bytes', async () => {
    const request = fc
      .record(
        {
          op: fc.oneof(fc.constantFrom(...ops), fc.string({ maxLength: 10 })),
          args: fc.oneof(
            fc.dictionary(
              fc.oneof(fc.constantFrom(...argNames), fc.string({ maxLength: 6 })),
              fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.integer({ min: 0, max: 50 }), fc.constant('k')),
              { maxKeys: 4 },
            ),
            fc.jsonValue({ maxDepth: 1 }),
          ),
          extra: fc.jsonValue({ maxDepth: 1 }),
        },
        { requiredKeys: ['op'], noNullPrototype: true },
      )
      .map(json)
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 128 }), check), { numRuns: 500 })
    await fc.assert(fc.asyncProperty(request, check), { numRuns: 2000 })
    await fc.assert(fc.asyncProperty(mutated(request), check), { numRuns: 1000 })
  })
})
