import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import { InvalidArgumentError } from '../../src/errors.ts'
import { type Agent, createAgent } from '../../src/index.ts'
import type { ConclaveServices } from '../../src/net/libp2p-node.ts'
import { createConclaveLibp2p } from '../../src/net/libp2p-node.ts'
import { generatePsk, loadPsk, parsePsk } from '../../src/net/pnet.ts'

const text = new TextDecoder()
const bytes = (value: string) => new TextEncoder().encode(value)

describe('PSK key files', () => {
  it('generates keys in the libp2p swarm.key format, each different', () => {
    const key = generatePsk()
    expect(text.decode(key)).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/)
    expect(text.decode(generatePsk())).not.toBe(text.decode(key))
    expect(parsePsk(key)).toEqual(key)
  })

  it('accepts CRLF, upper-case hex and a missing final newline; refuses anything else', () => {
    const hex = 'AB'.repeat(32)
    const canonical = `/key/swarm/psk/1.0.0/\n/base16/\n${'ab'.repeat(32)}\n`
    expect(text.decode(parsePsk(bytes(`/key/swarm/psk/1.0.0/\r\n/base16/\r\n${hex}`)))).toBe(canonical)
    for (const bad of [
      '',
      `/key/swarm/psk/1.0.0/\n/base64/\n${hex}`,
      `/key/swarm/psk/2.0.0/\n/base16/\n${hex}`,
      `/key/swarm/psk/1.0.0/\n/base16/\n${hex.slice(2)}`,
      `/key/swarm/psk/1.0.0/\n/base16/\n${hex}zz`,
      `/key/swarm/psk/1.0.0/\n/base16/\n${hex}\nextra`,
    ]) {
      expect(() => parsePsk(bytes(bad)), bad).toThrow(InvalidArgumentError)
    }
    expect(() => parsePsk(new Uint8Array([0xff, 0xfe]))).toThrow(InvalidArgumentError)
  })

  it('loads a key from a file, and says which file it could not read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'conclave-psk-'))
    try {
      const key = generatePsk()
      writeFileSync(join(dir, 'swarm.key'), key)
      expect(loadPsk(join(dir, 'swarm.key'))).toEqual(key)
      expect(() => loadPsk(join(dir, 'missing.key'))).toThrow(/missing\.key/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('never puts the key in an error message', () => {
    const secret = 'c0ffee'.repeat(10)
    try {
      parsePsk(bytes(`/key/swarm/psk/1.0.0/\n/base16/\n${secret}`))
      throw new Error('expected a refusal')
    } catch (err) {
      expect((err as Error).message).not.toContain('c0ffee')
    }
  })
})

describe('private network (@libp2p/pnet)', () => {
  const nodes: Libp2p<ConclaveServices>[] = []
  afterEach(async () => {
    for (const node of nodes.splice(0)) await node.stop()
  })

  async function node(psk?: Uint8Array): Promise<Libp2p<ConclaveServices>> {
    const created = await createConclaveLibp2p({ transport: 'tcp', psk })
    nodes.push(created)
    return created
  }

  /**
   * Whether `from` can dial `to` and ping it within `timeoutMs`. A loopback connection takes milliseconds;
   * with mismatched keys the Noise handshake reads garbage and hangs until the timeout.
   */
  async function connects(from: Libp2p<ConclaveServices>, to: Libp2p, timeoutMs = 1_000): Promise<boolean> {
    try {
      const signal = AbortSignal.timeout(timeoutMs)
      await from.dial(to.getMultiaddrs(), { signal })
      await from.services.ping.ping(to.peerId, { signal })
      return true
    } catch {
      return false
    }
  }

  it('connects nodes that share a key', async () => {
    const key = generatePsk()
    expect(await connects(await node(key), await node(key), 5_000)).toBe(true)
  })

  it('refuses a node with another key, either way', async () => {
    const a = await node(generatePsk())
    const b = await node(generatePsk())
    expect(await Promise.all([connects(a, b), connects(b, a)])).toEqual([false, false])
    expect(a.getConnections()).toHaveLength(0)
    expect(b.getConnections()).toHaveLength(0)
  })

  it('refuses a node without a key, either way', async () => {
    const privateNode = await node(generatePsk())
    const open = await node()
    expect(await Promise.all([connects(open, privateNode), connects(privateNode, open)])).toEqual([
      false,
      false,
    ])
    expect(privateNode.getConnections()).toHaveLength(0)
  })
})

describe('agents on a private network', () => {
  const agents: Agent[] = []
  afterEach(async () => {
    for (const agent of agents.splice(0)) await agent.stop()
  })

  // joinTimeoutMs: an outsider's join asks again with back-off until then, and must reject (not hang).
  async function agent(psk: Uint8Array | string | undefined): Promise<Agent> {
    const created = await createAgent({
      transport: 'tcp',
      psk,
      operationTimeoutMs: 1_500,
      joinTimeoutMs: 5_000,
    })
    agents.push(created)
    return created
  }

  it('lets an agent with the key join, and keeps one with another key or none out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'conclave-psk-'))
    try {
      const keyFile = join(dir, 'swarm.key')
      writeFileSync(keyFile, generatePsk())
      const founder = await agent(keyFile)
      await founder.join({})
      const member = await agent(loadPsk(keyFile))
      await member.join({ bootstrap: founder.multiaddrs() })
      expect((await founder.members()).map(info => info.id).sort()).toEqual([founder.id, member.id].sort())
      const outsiders = [await agent(generatePsk()), await agent(undefined)]
      const joins = await Promise.allSettled(
        outsiders.map(outsider => outsider.join({ bootstrap: founder.multiaddrs() })),
      )
      for (const join of joins) {
        expect(join.status).toBe('rejected')
        expect((join as PromiseRejectedResult).reason).toMatchObject({ name: 'NoLeaderError' })
      }
      expect(await founder.members()).toHaveLength(2)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
