import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { InvalidArgumentError } from '../../src/errors.ts'
import type { SvidError } from '../../src/security/errors.ts'
import { resolveSecurity } from '../../src/security/options.ts'
import { chainPem, intermediateCa, leafSvid, rootCa } from './pki.ts'

const TD = 'example.org'
const root = rootCa(TD)
const ca = intermediateCa(root, TD)
const leaf = leafSvid(ca, `spiffe://${TD}/agent/a`)
const partnerRoot = rootCa('partner.org')
const dir = mkdtempSync(join(tmpdir(), 'conclave-security-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function file(name: string, content: string): string {
  const path = join(dir, name)
  writeFileSync(path, content)
  return path
}

function refusal(run: () => unknown): InvalidArgumentError {
  try {
    run()
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError)
    return err as InvalidArgumentError
  }
  throw new Error('expected InvalidArgumentError')
}

describe('security options', () => {
  it('is off without an SVID', () => {
    expect(resolveSecurity(undefined)).toBeUndefined()
    expect(resolveSecurity({})).toBeUndefined()
  })

  it('loads an SVID, its bundle and federated bundles from files or inline PEM', () => {
    const fromFiles = resolveSecurity({
      svid: { certificate: file('svid.pem', chainPem(leaf, ca)), key: file('svid.key', leaf.keyPem) },
      trustBundle: file('bundle.pem', root.pem),
      federatedBundles: { 'partner.org': file('partner.pem', partnerRoot.pem) },
    })!
    expect(fromFiles.svid.spiffeId.id).toBe(`spiffe://${TD}/agent/a`)
    expect([...fromFiles.bundles.keys()]).toEqual([TD, 'partner.org'])
    expect(fromFiles.policy.authorize('spiffe://partner.org/x', 'vote')).toBe(true)
    const inline = resolveSecurity({
      svid: { certificate: chainPem(leaf, ca), key: leaf.keyPem },
      trustBundle: root.pem,
      policy: [{ ids: [`spiffe://${TD}/agent/*`], allow: ['join'] }],
      identityTimeoutMs: 2_000,
    })!
    expect(inline.policy.allowed(`spiffe://${TD}/agent/b`)).toEqual(['join'])
    expect(inline.identityTimeoutMs).toBe(2_000)
  })

  it('fails at start for an SVID that its own bundle does not validate', () => {
    const expired = leafSvid(ca, `spiffe://${TD}/agent/a`, { notAfter: new Date(Date.now() - 1000) })
    const error = refusal(() =>
      resolveSecurity({
        svid: { certificate: chainPem(expired, ca), key: expired.keyPem },
        trustBundle: root.pem,
      }),
    )
    expect((error.cause as SvidError).reason).toBe('expired')
    const foreign = refusal(() =>
      resolveSecurity({
        svid: { certificate: chainPem(leaf, ca), key: leaf.keyPem },
        trustBundle: partnerRoot.pem,
      }),
    )
    expect((foreign.cause as SvidError).reason).toBe('untrusted')
  })

  it('refuses incomplete or unknown options and unreadable files', () => {
    const svid = { certificate: chainPem(leaf, ca), key: leaf.keyPem }
    expect(refusal(() => resolveSecurity({ svid })).message).toMatch(/trustBundle/)
    expect(refusal(() => resolveSecurity({ trustBundle: root.pem })).message).toMatch(/need security.svid/)
    expect(
      refusal(() => resolveSecurity({ svid, trustBundle: root.pem, psk: 'x' } as never)).message,
    ).toMatch(/unknown security option psk/)
    expect(refusal(() => resolveSecurity({ svid, trustBundle: join(dir, 'nope.pem') })).message).toMatch(
      /nope\.pem/,
    )
    expect(
      refusal(() =>
        resolveSecurity({ svid, trustBundle: root.pem, federatedBundles: { 'Bad TD': root.pem } }),
      ).message,
    ).toMatch(/Bad TD/)
    expect(
      refusal(() => resolveSecurity({ svid, trustBundle: root.pem, policy: [{ ids: ['x'], allow: '*' }] }))
        .message,
    ).toMatch(/policy pattern/)
    expect(() =>
      resolveSecurity({
        svid: { certificate: leaf.pem, key: leafSvid(ca, `spiffe://${TD}/b`).keyPem },
        trustBundle: root.pem,
      }),
    ).toThrow(InvalidArgumentError)
  })
})
