import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Agent, createAgent } from '../../src/index.ts'
import type { SecurityRefusal } from '../../src/security/options.ts'
import type { PolicyRule } from '../../src/security/policy.ts'
import { securityFor, TD, trustDomain } from '../security/agents.ts'
import { chainPem, leafSvid, rootCa } from '../security/pki.ts'
import { cli } from './helpers.ts'

// The `conclave` command as a child process against an agent with SPIFFE identities in this process.
const POLICY: PolicyRule[] = [
  { ids: [`spiffe://${TD}/agent/*`], allow: '*' },
  { ids: [`spiffe://${TD}/cli/admin`], allow: ['write', 'read'] },
  { ids: [`spiffe://${TD}/cli/reader`], allow: ['read'] },
]

const dir = mkdtempSync(join(tmpdir(), 'conclave-cli-svid-'))
const refusals: SecurityRefusal[] = []
let agent: Agent
let peer: string
/** An agent without SPIFFE identities. */
let open: Agent

/** The three identity files of `name`, as flags. */
const files: Record<string, { svid: string; key: string; bundle: string }> = {}
function flags(name: string): string[] {
  const { svid, key, bundle } = files[name]
  return ['--svid', svid, '--svid-key', key, '--trust-bundle', bundle]
}

function write(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

beforeAll(async () => {
  const td = trustDomain()
  const bundle = write('bundle.pem', td.root.pem)
  for (const name of ['admin', 'reader']) {
    const leaf = leafSvid(td.ca, `spiffe://${TD}/cli/${name}`)
    files[name] = {
      svid: write(`${name}.pem`, chainPem(leaf, td.ca)),
      key: write(`${name}-key.pem`, leaf.keyPem),
      bundle,
    }
  }
  // A CA the agent does not trust, issuing in its trust domain: the client trusts it, the agent does not.
  const rogueRoot = rootCa(TD)
  const rogue = leafSvid(rogueRoot, `spiffe://${TD}/cli/admin`)
  files.rogue = {
    svid: write('rogue.pem', rogue.pem),
    key: write('rogue-key.pem', rogue.keyPem),
    bundle: write('rogue-bundle.pem', td.root.pem + rogueRoot.pem),
  }
  agent = await createAgent({
    name: 's0',
    security: securityFor(td, 'agent/s0', { policy: POLICY, refusals }),
  })
  await agent.join({})
  peer = agent.multiaddrs()[0]
  open = await createAgent({ name: 'o0' })
  await open.join({})
})

afterAll(async () => {
  await Promise.all([agent?.stop(), open?.stop()])
  rmSync(dir, { recursive: true, force: true })
})

describe('conclave command line with SPIFFE identities', () => {
  it('an SVID whose policy allows writing puts and gets; its env variables work as the flags do', async () => {
    const put = await cli(['kv', 'put', 'svid/k', 'v1', '--peer', peer, ...flags('admin')])
    expect(put.stderr).toBe('')
    expect(put.code).toBe(0)
    expect(put.stdout).toMatch(/^OK revision \d+\n$/)
    const { svid, key, bundle } = files.admin
    const get = await cli(['kv', 'get', 'svid/k', '--peer', peer], {
      CONCLAVE_SVID: svid,
      CONCLAVE_SVID_KEY: key,
      CONCLAVE_TRUST_BUNDLE: bundle,
    })
    expect(get.stderr).toBe('')
    expect(get.code).toBe(0)
    expect(get.stdout).toBe('v1\n')
    expect(await agent.consensus.get('svid/k')).toBe('v1')
  })

  it('refuses a client without an SVID, with the reason', async () => {
    const result = await cli(['kv', 'get', 'svid/k', '--peer', peer])
    expect(result.code).toBe(1)
    expect(result.stdout).toBe('')
    // The agent may close the connection before its answer gets out; the CLI tells why either way.
    expect(result.stderr).toMatch(
      /^UnauthorizedError: .*\(this client has no SVID: pass --svid, --svid-key and --trust-bundle, or set CONCLAVE_SVID, CONCLAVE_SVID_KEY and CONCLAVE_TRUST_BUNDLE\)\n$/,
    )
    expect(refusals.some(refusal => refusal.reason.includes('identity not established'))).toBe(true)
  })

  it('refuses a put from an SVID whose policy lacks write, and says so; it may still read', async () => {
    const put = await cli(['kv', 'put', 'svid/k', 'mine', '--peer', peer, ...flags('reader')])
    expect(put.code).toBe(1)
    expect(put.stdout).toBe('')
    expect(put.stderr).toMatch(/^UnauthorizedError: .*spiffe:\/\/example\.org\/cli\/reader may not write\n$/)
    expect(await agent.consensus.get('svid/k')).toBe('v1')
    const get = await cli(['kv', 'get', 'svid/k', '--peer', peer, ...flags('reader')])
    expect(get.code).toBe(0)
    expect(get.stdout).toBe('v1\n')
  })

  it('reports the refusal of an SVID the agent does not trust', async () => {
    const result = await cli(['kv', 'put', 'svid/k', 'rogue', '--peer', peer, ...flags('rogue')])
    expect(result.code).toBe(1)
    expect(result.stdout).toBe('')
    expect(result.stderr).toMatch(
      /^UnauthorizedError: \S+ refused this client's identity \(spiffe:\/\/example\.org\/cli\/admin\): svid: .*\(untrusted\)/,
    )
    expect(await agent.consensus.get('svid/k')).toBe('v1')
  })

  it('with an SVID, refuses to talk to an agent that cannot prove one', async () => {
    const result = await cli(['kv', 'put', 'svid/k', 'v', '--peer', open.multiaddrs()[0], ...flags('admin')])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(
      /^IdentityError: could not verify the identity of \S+ \(does the cluster run with SPIFFE identities\?\)/,
    )
    expect(await open.consensus.get('svid/k')).toBeUndefined()
  })

  it('needs all three identity options or none, and names a bad file', async () => {
    const { svid, key, bundle } = files.admin
    const [onlySvid, envKeyOnly, mixed, missingFile, wrongBundle] = await Promise.all([
      cli(['kv', 'get', 'k', '--peer', peer, '--svid', svid]),
      cli(['status', '--peer', peer], { CONCLAVE_SVID_KEY: key }),
      cli(['status', '--peer', peer, '--svid', svid, '--trust-bundle', bundle], { CONCLAVE_SVID_KEY: key }),
      cli([
        'status',
        '--peer',
        peer,
        '--svid',
        join(dir, 'absent.pem'),
        '--svid-key',
        key,
        '--trust-bundle',
        bundle,
      ]),
      cli(['status', '--peer', peer, ...flags('rogue').slice(0, 4), '--trust-bundle', bundle]),
    ])
    for (const result of [onlySvid, envKeyOnly]) {
      expect(result.code).toBe(2)
      expect(result.stdout).toBe('')
      expect(result.stderr).toMatch(
        /^UsageError: --svid, --svid-key and --trust-bundle go together: .* missing\n$/,
      )
    }
    expect(onlySvid.stderr).toContain(
      '--svid-key (or CONCLAVE_SVID_KEY) and --trust-bundle (or CONCLAVE_TRUST_BUNDLE) missing',
    )
    expect(envKeyOnly.stderr).toContain('--svid (or CONCLAVE_SVID) and --trust-bundle')
    // Flags and environment variables combine.
    expect(mixed.stderr).toBe('')
    expect(mixed.code).toBe(0)
    expect(missingFile.code).toBe(1)
    expect(missingFile.stderr).toMatch(
      /^InvalidArgumentError: --svid: could not read \S+absent\.pem \(ENOENT\)\n$/,
    )
    expect(wrongBundle.code).toBe(1)
    expect(wrongBundle.stderr).toMatch(
      /^InvalidArgumentError: --svid \(checked against --trust-bundle\): .*\(untrusted\)\n$/,
    )
  })
})
