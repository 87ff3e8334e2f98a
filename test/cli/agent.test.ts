import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { COMMAND_SET_VERSION } from '../../src/state/versions.ts'
import { TD, trustDomain } from '../security/agents.ts'
import { chainPem, leafSvid } from '../security/pki.ts'
import { cli, RunningCli } from './helpers.ts'

const running: RunningCli[] = []
const dataRoot = mkdtempSync(join(tmpdir(), 'conclave-cli-'))

afterEach(async () => {
  for (const process of running.splice(0)) {
    process.kill('SIGKILL')
    await process.exited
  }
})
afterAll(() => rmSync(dataRoot, { recursive: true, force: true }))

function start(args: string[]): RunningCli {
  const agent = new RunningCli(['agent', ...args])
  running.push(agent)
  return agent
}

const ADDRESS = /listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\w+)$/

describe('conclave agent', () => {
  it('prints its address, founds a cluster others join, logs them, and stops cleanly on SIGTERM', async () => {
    const first = start([
      '--name',
      'cli-a',
      '--voters',
      '1',
      '--capabilities',
      'gpu,cpu',
      '--labels',
      'zone=x',
    ])
    const address = ADDRESS.exec(await first.line(ADDRESS))![1]
    await first.line(/leader is cli-a .*term \d+$/)
    await first.line(/this agent is now the leader$/)

    const second = start([
      '--name',
      'cli-b',
      '--bootstrap',
      address,
      '--json',
      '--data-dir',
      join(dataRoot, 'b'),
    ])
    const joined = JSON.parse(await second.line(/"event":"joined"/))
    expect(joined.members).toBeGreaterThanOrEqual(2)
    await first.line(/member joined: cli-b nonvoter/)

    const status = await cli(['status', '--json', '--peer', address])
    expect(status.code).toBe(0)
    const parsed = JSON.parse(status.stdout)
    const members = new Map(parsed.members.map((member: { name: string }) => [member.name, member]))
    expect([...members.keys()].sort()).toEqual(['cli-a', 'cli-b'])
    expect(members.get('cli-a')).toMatchObject({
      role: 'voter',
      capabilities: ['gpu', 'cpu'],
      labels: { zone: 'x' },
    })
    expect(parsed.leader).toBe(parsed.agent.id)
    // A founded cluster runs the newest command set; the plain form says it on its first line.
    expect(parsed).toMatchObject({
      clusterVersion: COMMAND_SET_VERSION,
      supportedVersion: COMMAND_SET_VERSION,
    })
    const plain = await cli(['status', '--peer', address])
    expect(plain.stdout.split('\n')[0]).toMatch(new RegExp(`, command set v${COMMAND_SET_VERSION}$`))

    second.kill('SIGTERM')
    expect(await second.exited).toEqual({ code: 0, signal: null })
    expect(JSON.parse(second.lines.at(-1)!)).toMatchObject({ event: 'stopped' })
    first.kill('SIGINT')
    expect(await first.exited).toEqual({ code: 0, signal: null })
    expect(first.lines.at(-2)).toMatch(/SIGINT: stopping$/)
    expect(first.lines.at(-1)).toMatch(/ stopped$/)
    expect(first.stderr).toBe('')
  })

  it('exits 2 with one line naming the option when its address is not one', async () => {
    const result = await cli(['agent', '--listen', 'not-a-multiaddr'])
    expect(result.code).toBe(2)
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1)
    expect(result.stderr).toMatch(/^UsageError: --listen not-a-multiaddr is not a multiaddr/)
  })

  it('runs with SPIFFE identities given --svid, --svid-key and --trust-bundle (all three), and a --policy', async () => {
    const td = trustDomain()
    const write = (name: string, text: string): string => {
      const path = join(dataRoot, name)
      writeFileSync(path, text)
      return path
    }
    const bundle = write('bundle.pem', td.root.pem)
    const identity = (name: string): string[] => {
      const leaf = leafSvid(td.ca, `spiffe://${TD}/${name}`)
      const svid = write(`${name.replace('/', '-')}.pem`, chainPem(leaf, td.ca))
      const key = write(`${name.replace('/', '-')}-key.pem`, leaf.keyPem)
      return ['--svid', svid, '--svid-key', key, '--trust-bundle', bundle]
    }
    const agentFlags = identity('agent/s')
    const partial = await cli(['agent', ...agentFlags.slice(0, 4)])
    expect(partial.code).toBe(2)
    expect(partial.stderr).toBe(
      'UsageError: --svid, --svid-key and --trust-bundle go together: --trust-bundle missing\n',
    )

    // --policy: agents may do everything, cli/admin may write and read, cli/ops may only read.
    const policy = write(
      'policy.json',
      JSON.stringify([
        { ids: [`spiffe://${TD}/agent/*`], allow: '*' },
        { ids: [`spiffe://${TD}/cli/admin`], allow: ['write', 'read'] },
        { ids: [`spiffe://${TD}/cli/ops`], allow: ['read'] },
      ]),
    )
    const badPolicies = await Promise.all([
      cli(['agent', '--policy', policy]),
      cli(['agent', ...agentFlags, '--policy', join(dataRoot, 'absent.json')]),
      cli(['agent', ...agentFlags, '--policy', write('not-json.json', '[{"ids": [')]),
      cli(['agent', ...agentFlags, '--policy', write('bad-action.json', '[{"ids": [], "allow": ["fly"]}]')]),
      cli(['agent', ...agentFlags, '--policy', write('bad-id.json', '[{"ids": ["agent/*"], "allow": "*"}]')]),
    ])
    expect(badPolicies.map(result => [result.code, result.stderr.split(':')[0]])).toEqual([
      [2, 'UsageError'],
      [1, 'InvalidArgumentError'],
      [1, 'InvalidArgumentError'],
      [1, 'InvalidArgumentError'],
      [1, 'InvalidArgumentError'],
    ])
    expect(badPolicies[0].stderr).toBe('UsageError: --policy needs --svid, --svid-key and --trust-bundle\n')
    expect(badPolicies[1].stderr).toMatch(
      /^InvalidArgumentError: --policy: could not read \S+absent\.json \(ENOENT\)\n$/,
    )
    expect(badPolicies[2].stderr).toMatch(/^InvalidArgumentError: --policy: \S+not-json\.json is not JSON/)
    expect(badPolicies[3].stderr).toMatch(/^InvalidArgumentError: --policy: unknown action "fly"/)
    expect(badPolicies[4].stderr).toMatch(/^InvalidArgumentError: --policy: /)
    for (const result of badPolicies) expect(result.stderr.trimEnd().split('\n')).toHaveLength(1)

    const agent = start(['--name', 'cli-s', '--voters', '1', ...agentFlags, '--policy', policy])
    const address = ADDRESS.exec(await agent.line(ADDRESS))![1]
    await agent.line(/this agent is now the leader$/)
    const ops = identity('cli/ops')
    const [status, anonymous, opsPut, adminPut] = await Promise.all([
      cli(['status', '--json', '--peer', address, ...ops]),
      cli(['status', '--peer', address]),
      cli(['kv', 'put', 'policy/k', 'ops', '--peer', address, ...ops]),
      cli(['kv', 'put', 'policy/k', 'admin', '--peer', address, ...identity('cli/admin')]),
    ])
    expect(status.stderr).toBe('')
    expect(status.code).toBe(0)
    expect(JSON.parse(status.stdout).members).toMatchObject([
      { name: 'cli-s', spiffeId: `spiffe://${TD}/agent/s` },
    ])
    expect(anonymous.code).toBe(1)
    expect(anonymous.stderr).toMatch(/^UnauthorizedError: .*this client has no SVID/)
    expect(opsPut.code).toBe(1)
    expect(opsPut.stderr).toMatch(/^UnauthorizedError: .*spiffe:\/\/example\.org\/cli\/ops may not write\n$/)
    expect(adminPut.stderr).toBe('')
    expect(adminPut.code).toBe(0)
    const get = await cli(['kv', 'get', 'policy/k', '--peer', address, ...ops])
    expect(get.stdout).toBe('admin\n')
  })
})
