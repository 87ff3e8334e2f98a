import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
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

    second.kill('SIGTERM')
    expect(await second.exited).toEqual({ code: 0, signal: null })
    expect(JSON.parse(second.lines.at(-1)!)).toMatchObject({ event: 'stopped' })
    first.kill('SIGINT')
    expect(await first.exited).toEqual({ code: 0, signal: null })
    expect(first.lines.at(-2)).toMatch(/SIGINT: stopping$/)
    expect(first.lines.at(-1)).toMatch(/ stopped$/)
    expect(first.stderr).toBe('')
  })

  it('exits 1 with one line when it cannot start', async () => {
    const result = await cli(['agent', '--listen', 'not-a-multiaddr'])
    expect(result.code).toBe(1)
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1)
  })
})
