import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { SvidError } from '../../src/security/errors.ts'
import { isTrustDomain, parseSpiffeId } from '../../src/security/spiffe-id.ts'

describe('SPIFFE ID syntax', () => {
  it('parses valid IDs into trust domain and path', () => {
    expect(parseSpiffeId('spiffe://example.org/ns/prod/sa/agent-1')).toEqual({
      id: 'spiffe://example.org/ns/prod/sa/agent-1',
      trustDomain: 'example.org',
      path: '/ns/prod/sa/agent-1',
    })
    expect(parseSpiffeId('spiffe://td_1.example-2/A.b_c-D').path).toBe('/A.b_c-D')
    expect(parseSpiffeId('spiffe://example.org')).toMatchObject({ trustDomain: 'example.org', path: '' })
  })

  it('refuses every form the standard forbids', () => {
    for (const bad of [
      '',
      'example.org/agent',
      'SPIFFE://example.org/agent',
      'https://example.org/agent',
      'spiffe:///agent',
      'spiffe://',
      'spiffe://Example.org/agent',
      'spiffe://user@example.org/agent',
      'spiffe://example.org:443/agent',
      'spiffe://example.org/',
      'spiffe://example.org/agent/',
      'spiffe://example.org//agent',
      'spiffe://example.org/./agent',
      'spiffe://example.org/agent/..',
      'spiffe://example.org/agent?x=1',
      'spiffe://example.org/agent#frag',
      'spiffe://example.org/a%20b',
      'spiffe://example.org/a b',
      'spiffe://exa mple.org/a',
      `spiffe://${'a'.repeat(256)}/agent`,
      `spiffe://example.org/${'a'.repeat(2048)}`,
    ]) {
      expect(() => parseSpiffeId(bad), bad).toThrow(SvidError)
    }
  })

  it('never throws anything but SvidError', () => {
    fc.assert(
      fc.property(fc.string(), text => {
        try {
          const id = parseSpiffeId(`spiffe://${text}`)
          expect(id.id).toBe(`spiffe://${text}`)
        } catch (err) {
          expect(err).toBeInstanceOf(SvidError)
        }
      }),
    )
  })

  it('checks trust domain names', () => {
    expect(isTrustDomain('example.org')).toBe(true)
    expect(isTrustDomain('Example.org')).toBe(false)
    expect(isTrustDomain('')).toBe(false)
    expect(isTrustDomain('a/b')).toBe(false)
  })
})
