/**
 * SVID rotation without a restart: SPIRE issues short-lived SVIDs and renews them well before they expire;
 * an agent that could not take the renewed one would be refused by its peers at the old one's expiry.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { ConclaveService } from '../../src/agent/service.ts'
import { type Agent, createAgent, InvalidArgumentError } from '../../src/index.ts'
import type { SecurityRefusal } from '../../src/security/options.ts'
import type { ConclaveSecurity } from '../../src/security/security.ts'
import {
  cluster,
  FAST,
  failure,
  securityFor,
  TD,
  type TrustDomain,
  trustDomain,
  until,
} from '../security/agents.ts'
import { chainPem, type Issued, leafSvid } from '../security/pki.ts'

const HOUR = 3_600_000
const agents: Agent[] = []
const dir = mkdtempSync(join(tmpdir(), 'conclave-rotation-'))
afterEach(async () => {
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** An SVID for `spiffe://<td>/<path>` valid until `notAfter`. */
function leaf(td: TrustDomain, path: string, notAfter: number): Issued {
  return leafSvid(td.ca, `spiffe://${td.name}/${path}`, { notAfter: new Date(notAfter) })
}

function pem(td: TrustDomain, issued: Issued): { certificate: string; key: string } {
  return { certificate: chainPem(issued, td.ca), key: issued.keyPem }
}

/** When `holder` stops trusting what `peer` proved to it (ms since epoch; 0 if it holds nothing). */
function knownExpiry(holder: Agent, peer: Agent): number {
  const service = (holder.libp2p as Libp2p<{ conclave: ConclaveService }>).services.conclave
  const { security } = service as unknown as { security: ConclaveSecurity }
  return security.identity?.identity(peer.id)?.expiresAt ?? 0
}

function write(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

describe('SVID rotation', () => {
  it('keeps a cluster whose SVIDs expire working when each agent rotates (by hand or from renewed files)', async () => {
    // X.509 times have whole seconds: the SVIDs below expire 8-9 s from now (time to form two clusters
    // under load; the check below says so if that ran out).
    const expiry = Math.ceil((Date.now() + 8_000) / 1000) * 1000
    const td = trustDomain()
    const refusals: SecurityRefusal[] = []
    const onRefusal = (refusal: SecurityRefusal): void => {
      refusals.push(refusal)
    }
    // `rotated`: a rotates through the API, b from its files. `stale`: the same, never rotated.
    const a = leaf(td, 'agent/a', expiry)
    const b = leaf(td, 'agent/b', expiry)
    const bFiles = { certificate: write('b.pem', chainPem(b, td.ca)), key: write('b-key.pem', b.keyPem) }
    const bundle = write('bundle.pem', td.root.pem)
    const rotated = await cluster(agents, [
      { name: 'a', security: { ...securityFor(td, 'agent/a', { leaf: a }), onRefusal } },
      {
        name: 'b',
        security: {
          svid: bFiles,
          trustBundle: bundle,
          reloadIntervalMs: 100,
          identityTimeoutMs: 2_000,
          onRefusal,
        },
      },
    ])
    const staleRefusals: SecurityRefusal[] = []
    const stale = await cluster(
      agents,
      ['c', 'd'].map(name => ({
        name,
        security: securityFor(td, `agent/${name}`, {
          leaf: leaf(td, `agent/${name}`, expiry),
          refusals: staleRefusals,
        }),
      })),
    )
    for (const group of [rotated, stale]) await group[1].consensus.propose('before', 1)
    expect(Date.now(), 'the clusters took too long to form to test the expiry').toBeLessThan(expiry - 1_500)

    // Renewed SVIDs, valid for a day: a by hand, b by its files being replaced (key after certificate).
    await rotated[0].rotateSvid({ svid: pem(td, leaf(td, 'agent/a', Date.now() + 24 * HOUR)) })
    // Proved to b before rotateSvid resolved: b already holds a's new expiry.
    expect(knownExpiry(rotated[1], rotated[0])).toBeGreaterThan(Date.now() + 23 * HOUR)
    const renewed = leaf(td, 'agent/b', Date.now() + 24 * HOUR)
    writeFileSync(bFiles.certificate, chainPem(renewed, td.ca))
    await new Promise(resolve => setTimeout(resolve, 250))
    writeFileSync(bFiles.key, renewed.keyPem)
    await until(() => knownExpiry(rotated[0], rotated[1]) > Date.now() + 23 * HOUR, "b's renewed SVID at a")

    // Past the old SVIDs' expiry, the rotated cluster works on; the stale one is refused.
    await new Promise(resolve => setTimeout(resolve, expiry + 1_000 - Date.now()))
    for (const agent of rotated) {
      await agent.consensus.propose(`after/${agent.name}`, 2)
      expect(await agent.consensus.get(`after/${agent.name}`)).toBe(2)
    }
    expect(refusals).toEqual([])
    await expect(stale[1].consensus.propose('after', 2)).rejects.toBeDefined()
    expect(staleRefusals.some(refusal => /expired/.test(refusal.reason))).toBe(true)
  })

  it('refuses a rotation it cannot use, and changes nothing', async () => {
    const td = trustDomain()
    const [a, b] = await cluster(agents, [
      { name: 'a', security: securityFor(td, 'agent/a') },
      { name: 'b', security: securityFor(td, 'agent/b') },
    ])
    const other = trustDomain('other.org')
    const bad: [string, Parameters<Agent['rotateSvid']>[0], RegExp][] = [
      ['another SPIFFE ID', { svid: pem(td, leaf(td, 'agent/z', Date.now() + HOUR)) }, /keep the SPIFFE ID/],
      [
        'an expired SVID',
        {
          svid: pem(
            td,
            leafSvid(td.ca, `spiffe://${TD}/agent/a`, {
              notBefore: new Date(Date.now() - 3 * HOUR),
              notAfter: new Date(Date.now() - HOUR),
            }),
          ),
        },
        /expired/,
      ],
      [
        'an SVID the new bundle does not validate',
        { svid: pem(td, leaf(td, 'agent/a', Date.now() + HOUR)), trustBundle: other.root.pem },
        /untrusted|svid/,
      ],
      [
        'a missing file',
        { svid: { certificate: join(dir, 'absent.pem'), key: join(dir, 'absent.pem') } },
        /could not read/,
      ],
      ['no SVID', {} as never, /svid/],
    ]
    for (const [what, rotation, message] of bad) {
      const error = await failure(a.rotateSvid(rotation))
      expect(error, what).toBeInstanceOf(InvalidArgumentError)
      expect(error.message, what).toMatch(message)
    }
    // Nothing changed: the same SVID still works both ways.
    await b.consensus.propose('still', 1)
    expect(await a.consensus.get('still')).toBe(1)

    const open = await createAgent({ ...FAST, name: 'open' })
    agents.push(open)
    const error = await failure(open.rotateSvid({ svid: pem(td, leaf(td, 'agent/a', Date.now() + HOUR)) }))
    expect(error).toBeInstanceOf(InvalidArgumentError)
    expect(error.message).toMatch(/identities are off/)
    await expect(
      createAgent({ ...FAST, security: { ...securityFor(td, 'agent/x'), reloadIntervalMs: 100 } }),
    ).rejects.toThrow(/reloadIntervalMs needs security.svid as file paths/)
  })
})
