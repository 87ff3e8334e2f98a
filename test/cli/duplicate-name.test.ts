import { afterEach, describe, expect, it } from 'vitest'
import { cli, RunningCli } from './helpers.ts'

const running: RunningCli[] = []

afterEach(async () => {
  for (const process of running.splice(0)) {
    process.kill('SIGKILL')
    await process.exited
  }
})

const ADDRESS = /listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\w+)$/

describe('conclave agent with a --name already taken', () => {
  it('exits 1 with one line saying so, and status right after lists no ghost of it', async () => {
    const first = new RunningCli(['agent', '--name', 'twin', '--voters', '1'])
    running.push(first)
    const address = ADDRESS.exec(await first.line(ADDRESS))![1]
    await first.line(/this agent is now the leader$/)

    const second = new RunningCli(['agent', '--name', 'twin', '--bootstrap', address])
    running.push(second)
    expect((await second.exited).code).toBe(1)
    expect(second.stderr.trim().split('\n')).toEqual([expect.stringMatching(/name twin is held by agent/)])

    const status = await cli(['status', '--json', '--peer', address])
    expect(status.code).toBe(0)
    const members = JSON.parse(status.stdout).members as { name: string; status: string }[]
    expect(members.map(member => `${member.name}/${member.status}`)).toEqual(['twin/alive'])
  })
})
