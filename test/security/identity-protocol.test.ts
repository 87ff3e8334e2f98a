import { X509Certificate } from 'node:crypto'
import type { Libp2p } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { afterEach, describe, expect, it } from 'vitest'
import { RpcRemoteError } from '../../src/net/rpc.ts'
import type { Message } from '../../src/raft/types.ts'
import { raftMessageAction } from '../../src/security/actions.ts'
import { IdentityError, type SvidError, UnauthorizedError } from '../../src/security/errors.ts'
import { type Gate, SpiffeGate } from '../../src/security/gate.ts'
import type { IdentityService } from '../../src/security/identity-protocol.ts'
import { AuthorizationPolicy } from '../../src/security/policy.ts'
import { NONCE_BYTES, signProof, verifyProof } from '../../src/security/proof.ts'
import { parseSpiffeId } from '../../src/security/spiffe-id.ts'
import { loadSvid, parseTrustBundle, type TrustBundleSet, type X509Svid } from '../../src/security/svid.ts'
import type { Command } from '../../src/state/commands.ts'
import { systemScheduler } from '../../src/time/system-scheduler.ts'
import { introduce, plainNode, RawIdentityStream, type SecureNode, secureNode, waitFor } from './nodes.ts'
import { chainPem, type Issued, intermediateCa, issue, leafSvid, rootCa } from './pki.ts'

const TD = 'example.org'
const root = rootCa(TD)
const ca = intermediateCa(root, TD)
const bundles: TrustBundleSet = new Map([[TD, parseTrustBundle(root.pem)]])
const HOUR = 3_600_000

const nodes: Libp2p[] = []
afterEach(async () => {
  // One at a time: stopping connected nodes at once waits on each other's gossipsub streams (~500 ms).
  for (const created of nodes.splice(0)) await created.stop()
})

function svidFor(leaf: Issued): X509Svid {
  return loadSvid(chainPem(leaf, ca), leaf.keyPem)
}

/** An SVID that `loadSvid` would refuse (it checks the leaf rules), built as a rogue peer would. */
function rogueSvid(leaf: Issued, uri: string): X509Svid {
  return { spiffeId: parseSpiffeId(uri), chain: [leaf.cert, ca.cert], privateKey: leaf.key }
}

async function node(svid: X509Svid, init: Parameters<typeof secureNode>[2] = {}): Promise<SecureNode> {
  const created = await secureNode(svid, bundles, init)
  nodes.push(created)
  return created
}

function agent(path: string): X509Svid {
  return svidFor(leafSvid(ca, `spiffe://${TD}/${path}`))
}

function identityOf(n: SecureNode): IdentityService {
  return n.services.identity
}

async function failureOf(promise: Promise<unknown>): Promise<IdentityError> {
  try {
    await promise
  } catch (err) {
    expect(err).toBeInstanceOf(IdentityError)
    return err as IdentityError
  }
  throw new Error('expected the exchange to fail')
}

describe('identity protocol: admitted', () => {
  it('authenticates both peers in one exchange, and caches the result', async () => {
    const a = await node(agent('agent/a'), { eager: false })
    const b = await node(agent('agent/b'), { eager: false })
    await introduce([a, b])
    const accepted: string[] = []
    identityOf(b).onIdentity(identity => accepted.push(identity.spiffeId))
    const results = await Promise.all(
      Array.from({ length: 5 }, () => identityOf(a).authenticate(b.peerId.toString())),
    )
    for (const result of results) {
      expect(result).toMatchObject({ peerId: b.peerId.toString(), spiffeId: `spiffe://${TD}/agent/b` })
    }
    // Concurrent callers shared one exchange, which also taught b who a is.
    expect(accepted).toEqual([`spiffe://${TD}/agent/a`])
    expect(identityOf(b).identity(a.peerId.toString())?.spiffeId).toBe(`spiffe://${TD}/agent/a`)
    // b asking about a now costs nothing.
    expect((await identityOf(b).authenticate(a.peerId.toString())).spiffeId).toBe(`spiffe://${TD}/agent/a`)
    expect(accepted).toHaveLength(1)
  })

  it('authenticates a peer as soon as it is dialled (eager), and forgets it when the connection closes', async () => {
    const a = await node(agent('agent/a'))
    const b = await node(agent('agent/b'))
    await a.dial(b.getMultiaddrs())
    await waitFor(
      () =>
        identityOf(a).identity(b.peerId.toString()) !== undefined &&
        identityOf(b).identity(a.peerId.toString()) !== undefined,
      'both identities',
    )
    await a.hangUp(b.peerId)
    await waitFor(
      () =>
        identityOf(a).identity(b.peerId.toString()) === undefined &&
        identityOf(b).identity(a.peerId.toString()) === undefined,
      'identities forgotten',
    )
  })

  it('stops trusting an identity when its SVID expires', async () => {
    let clock = Date.now()
    const a = await node(agent('agent/a'), { eager: false, now: () => clock })
    const shortLived = svidFor(leafSvid(ca, `spiffe://${TD}/agent/b`, { notAfter: new Date(clock + HOUR) }))
    const b = await node(shortLived, { eager: false })
    await introduce([a, b])
    const identity = await identityOf(a).authenticate(b.peerId.toString())
    expect(identity.expiresAt).toBe(shortLived.chain[0].validToDate.getTime())
    clock += 2 * HOUR
    expect(identityOf(a).identity(b.peerId.toString())).toBeUndefined()
    const error = await failureOf(identityOf(a).authenticate(b.peerId.toString()))
    expect(error.reason).toBe('svid')
    expect((error.cause as SvidError).reason).toBe('expired')
  })
})

describe('identity protocol: refused', () => {
  const cases: [string, () => X509Svid, string][] = [
    [
      'wrong trust domain',
      () => {
        const otherRoot = rootCa('other.org')
        const leaf = leafSvid(otherRoot, 'spiffe://other.org/agent/x')
        return {
          spiffeId: parseSpiffeId('spiffe://other.org/agent/x'),
          chain: [leaf.cert],
          privateKey: leaf.key,
        }
      },
      'trust-domain',
    ],
    [
      'expired SVID',
      () =>
        svidFor(
          leafSvid(ca, `spiffe://${TD}/agent/x`, {
            notBefore: new Date(Date.now() - 3 * HOUR),
            notAfter: new Date(Date.now() - HOUR),
          }),
        ),
      'expired',
    ],
    [
      'CA as leaf',
      () =>
        rogueSvid(
          issue({
            subject: 'rogue CA',
            issuer: ca,
            ca: true,
            keyUsage: ['digitalSignature', 'keyCertSign'],
            uris: [`spiffe://${TD}/agent/x`],
          }),
          `spiffe://${TD}/agent/x`,
        ),
      'leaf-is-ca',
    ],
    [
      'two URI SANs',
      () =>
        rogueSvid(
          leafSvid(ca, `spiffe://${TD}/agent/x`, {
            uris: [`spiffe://${TD}/agent/x`, `spiffe://${TD}/admin`],
          }),
          `spiffe://${TD}/agent/x`,
        ),
      'uri-san-count',
    ],
  ]

  for (const [what, makeSvid, reason] of cases) {
    it(`refuses a peer presenting an invalid SVID: ${what}`, async () => {
      const verifier = await node(agent('agent/v'), { eager: false })
      const rogue = await node(makeSvid(), { eager: false })
      await introduce([verifier, rogue])
      const error = await failureOf(identityOf(verifier).authenticate(rogue.peerId.toString()))
      expect(error.reason).toBe('svid')
      expect((error.cause as SvidError).reason).toBe(reason)
      // Refused the other way too: the rogue starting the exchange learns nothing and is not admitted.
      identityOf(verifier).forget(rogue.peerId.toString())
      await identityOf(rogue)
        .authenticate(verifier.peerId.toString())
        .catch(() => {})
      await waitFor(() => identityOf(verifier).failure(rogue.peerId.toString()) !== undefined, 'refusal')
      expect(identityOf(verifier).identity(rogue.peerId.toString())).toBeUndefined()
      expect(identityOf(verifier).failure(rogue.peerId.toString())?.reason).toBe('svid')
    })
  }

  it("refuses a replayed proof: a peer relaying another peer's proof of its SVID", async () => {
    const verifier = await node(agent('agent/v'), { eager: false })
    const honest = await node(agent('agent/a'), { eager: false })
    const attacker = await plainNode()
    nodes.push(attacker)
    await introduce([verifier, honest, attacker])

    // The attacker opens an exchange with the verifier and gets its challenge...
    const toVerifier = await RawIdentityStream.open(attacker, verifier.peerId)
    await toVerifier.send({ nonce: crypto.getRandomValues(new Uint8Array(NONCE_BYTES)) })
    const challenge = await toVerifier.receive()
    expect(challenge.nonce).toHaveLength(NONCE_BYTES)
    // ...passes it to the honest peer as its own, which proves its SVID over that nonce...
    const toHonest = await RawIdentityStream.open(attacker, honest.peerId)
    await toHonest.send({ nonce: challenge.nonce })
    const honestProof = await toHonest.receive()
    toHonest.stream.abort(new Error('done'))
    // (the proof is genuine: it verifies for the honest peer's id and the verifier's nonce)
    const presentedLeaf = new X509Certificate(honestProof.certificates[0])
    expect(presentedLeaf.subjectAltName).toBe(`URI:spiffe://${TD}/agent/a`)
    expect(
      verifyProof(
        presentedLeaf.publicKey,
        honest.peerId.toString(),
        challenge.nonce!,
        honestProof.signature!,
      ),
    ).toBe(true)
    // ...and presents the honest peer's chain and proof as its own.
    await toVerifier.send({ certificates: honestProof.certificates, signature: honestProof.signature })
    const verdict = await toVerifier.receive()
    expect(verdict.error).toMatch(/^proof: /)

    const attackerId = attacker.peerId.toString()
    await waitFor(() => identityOf(verifier).failure(attackerId) !== undefined, 'refusal')
    expect(identityOf(verifier).failure(attackerId)?.reason).toBe('proof')
    expect(identityOf(verifier).identity(attackerId)).toBeUndefined()
  })

  it('refuses a proof replayed from an earlier exchange (a stale nonce)', async () => {
    const verifier = await node(agent('agent/v'), { eager: false })
    const peerLeaf = leafSvid(ca, `spiffe://${TD}/agent/p`)
    const peer = await plainNode()
    nodes.push(peer)
    await introduce([verifier, peer])
    const chain = [new Uint8Array(peerLeaf.cert.raw), new Uint8Array(ca.cert.raw)]
    const peerId = peer.peerId.toString()

    // A first, honest exchange: admitted.
    const first = await RawIdentityStream.open(peer, verifier.peerId)
    await first.send({ nonce: crypto.getRandomValues(new Uint8Array(NONCE_BYTES)) })
    const firstChallenge = await first.receive()
    const oldProof = signProof(peerLeaf.key, peerId, firstChallenge.nonce!)
    await first.send({ certificates: chain, signature: oldProof })
    expect((await first.receive()).error).toBeUndefined()
    expect(identityOf(verifier).identity(peerId)?.spiffeId).toBe(`spiffe://${TD}/agent/p`)

    // A second exchange answered with the first proof: the verifier's new nonce is not in it.
    identityOf(verifier).forget(peerId)
    const second = await RawIdentityStream.open(peer, verifier.peerId)
    await second.send({ nonce: crypto.getRandomValues(new Uint8Array(NONCE_BYTES)) })
    const secondChallenge = await second.receive()
    expect(secondChallenge.nonce).not.toEqual(firstChallenge.nonce)
    await second.send({ certificates: chain, signature: oldProof })
    expect((await second.receive()).error).toMatch(/^proof: /)
    await waitFor(() => identityOf(verifier).failure(peerId) !== undefined, 'refusal')
    expect(identityOf(verifier).failure(peerId)?.reason).toBe('proof')
  })

  it('refuses a peer that does not speak the protocol, and one that sends garbage', async () => {
    const verifier = await node(agent('agent/v'), { eager: false })
    const outsider = await plainNode()
    nodes.push(outsider)
    await introduce([verifier, outsider])
    const error = await failureOf(identityOf(verifier).authenticate(outsider.peerId.toString()))
    expect(error.reason).toBe('unreachable')
    // A failure is remembered for retryAfterMs: no new exchange per message.
    expect(identityOf(verifier).failure(outsider.peerId.toString())?.reason).toBe('unreachable')

    const raw = await RawIdentityStream.open(outsider, verifier.peerId)
    await raw.send({ nonce: new Uint8Array(3) })
    await waitFor(
      () => identityOf(verifier).failure(outsider.peerId.toString())?.reason === 'protocol',
      'protocol failure',
    )
  })
})

describe('closing the connections of unauthenticated peers', () => {
  it('disconnects a peer that connects and never proves an identity, keeps one that does', async () => {
    const verifier = await node(agent('agent/v'), {
      closeUnauthenticated: true,
      timeoutMs: 300,
      retryAfterMs: 5_000,
    })
    const member = await node(agent('agent/m'))
    const outsider = await plainNode()
    nodes.push(outsider)
    await member.dial(verifier.getMultiaddrs())
    await outsider.dial(verifier.getMultiaddrs())
    await waitFor(() => outsider.getConnections().length === 0, 'the outsider disconnected')
    expect(identityOf(verifier).failure(outsider.peerId.toString())?.reason).toBe('unreachable')
    expect(identityOf(verifier).identity(member.peerId.toString())?.spiffeId).toBe(`spiffe://${TD}/agent/m`)
    expect(member.getConnections(verifier.peerId)).toHaveLength(1)
  })

  it('disconnects a peer whose SVID is refused', async () => {
    const verifier = await node(agent('agent/v'), { closeUnauthenticated: true, retryAfterMs: 5_000 })
    const otherRoot = rootCa('other.org')
    const leaf = leafSvid(otherRoot, 'spiffe://other.org/agent/x')
    const rogue = await node({
      spiffeId: parseSpiffeId('spiffe://other.org/agent/x'),
      chain: [leaf.cert],
      privateKey: leaf.key,
    })
    await rogue.dial(verifier.getMultiaddrs())
    await waitFor(() => rogue.getConnections().length === 0, 'the rogue disconnected')
    expect(identityOf(verifier).failure(rogue.peerId.toString())?.reason).toBe('svid')
  })
})

describe('authorization gate over real nodes', () => {
  const FORWARD = '/conclave/test-forward/1.0.0'
  const policy = new AuthorizationPolicy([
    { ids: [`spiffe://${TD}/voter/*`], allow: '*' },
    { ids: [`spiffe://${TD}/worker/*`], allow: ['join', 'runTask'] },
  ])

  function gateOf(n: SecureNode): Gate {
    return new SpiffeGate({
      identity: identityOf(n),
      policy,
      log: defaultLogger().forComponent('test:gate'),
      scheduler: systemScheduler,
    })
  }

  it('refuses an unauthorized task submission before it reaches the handler, admits an authorized one', async () => {
    const leader = await node(agent('voter/leader'), { eager: false })
    const worker = await node(agent('worker/w1'), { eager: false })
    const voter = await node(agent('voter/v2'), { eager: false })
    await introduce([leader, worker, voter])
    const gate = gateOf(leader)
    const refusals: string[] = []
    const handled: unknown[] = []
    await leader.services.rpc.registerRpc(FORWARD, async (request, from) => {
      const command = JSON.parse(new TextDecoder().decode(request)) as Command
      const verdict = await gate.checkCommand(from, command)
      if (!verdict.ok) {
        refusals.push(verdict.reason)
        throw new UnauthorizedError(verdict.reason)
      }
      handled.push({ command, spiffeId: verdict.spiffeId })
      return new Uint8Array([1])
    })
    const submit = new TextEncoder().encode(JSON.stringify({ type: 'submitTask', task: { id: 't1' } }))

    const refused = worker.services.rpc.callRpc(leader.peerId.toString(), FORWARD, submit)
    await expect(refused).rejects.toBeInstanceOf(RpcRemoteError)
    await expect(refused).rejects.toMatchObject({ remoteName: 'UnauthorizedError' })
    expect(refusals).toEqual([`spiffe://${TD}/worker/w1 may not submitTask`])
    expect(handled).toEqual([])

    await expect(voter.services.rpc.callRpc(leader.peerId.toString(), FORWARD, submit)).resolves.toEqual(
      new Uint8Array([1]),
    )
    expect(handled).toEqual([
      { command: { type: 'submitTask', task: { id: 't1' } }, spiffeId: `spiffe://${TD}/voter/v2` },
    ])

    // The worker may still do what the policy gives it.
    expect(await gate.check(worker.peerId.toString(), 'runTask')).toEqual({
      ok: true,
      spiffeId: `spiffe://${TD}/worker/w1`,
    })
    expect(gate.admit(worker.peerId.toString(), 'runTask')).toBe(true)
    expect(await gate.admit(worker.peerId.toString(), 'vote')).toBe(false)
  })

  it('keeps Raft messages a peer may not send from ever reaching Raft', async () => {
    const leader = await node(agent('voter/leader'), { eager: false })
    const worker = await node(agent('worker/w1'), { eager: false })
    const voter = await node(agent('voter/v2'), { eager: false })
    await introduce([leader, worker, voter])
    const gate = gateOf(leader)
    const delivered: string[] = []
    // The hook the service puts in front of raftRunner.step().
    leader.services.raft.onMessage = (message, from) => {
      const admitted = gate.admit(from, raftMessageAction(message.type))
      const step = (): void => {
        delivered.push(`${message.type} from ${from === voter.peerId.toString() ? 'voter' : 'worker'}`)
      }
      if (admitted === true) return step()
      return admitted.then(ok => {
        if (ok) step()
      })
    }
    const to = leader.peerId.toString()
    const heartbeat = (from: SecureNode): Message => ({
      type: 'heartbeat',
      from: from.peerId.toString(),
      to,
      term: 5,
      leaderCommit: 0,
      context: '',
    })
    const response = (from: SecureNode): Message => ({
      type: 'heartbeatResponse',
      from: from.peerId.toString(),
      to,
      term: 5,
      context: '',
    })
    // A non-voter claiming leadership (a heartbeat) is refused; its answers to the leader are not.
    worker.services.raft.send(to, heartbeat(worker))
    worker.services.raft.send(to, response(worker))
    voter.services.raft.send(to, heartbeat(voter))
    await waitFor(() => delivered.length === 2, 'two deliveries')
    await new Promise(resolve => setTimeout(resolve, 50))
    expect(delivered.sort()).toEqual(['heartbeat from voter', 'heartbeatResponse from worker'])
    expect(leader.services.raft.stats().received).toBe(3)
  })

  it('refuses every action to a peer without a valid identity', async () => {
    const leader = await node(agent('voter/leader'), { eager: false })
    const outsider = await plainNode()
    nodes.push(outsider)
    await introduce([leader, outsider])
    const gate = gateOf(leader)
    const verdict = await gate.check(outsider.peerId.toString(), 'join')
    expect(verdict.ok).toBe(false)
    expect(gate.peek(outsider.peerId.toString(), 'join')?.ok).toBe(false)
    await expect(gate.require(outsider.peerId.toString(), 'join')).rejects.toMatchObject({
      name: 'UnauthorizedError',
    })
  })
})
