/** `conclave agent --http`: the dashboard of a CLI agent, and its address checked before anything listens. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { cli, RunningCli } from '../cli/helpers.ts'
import { TD, trustDomain } from '../security/agents.ts'
import { chainPem, leafSvid } from '../security/pki.ts'

const running: RunningCli[] = []
const dataRoot = mkdtempSync(join(tmpdir(), 'conclave-http-cli-'))

afterEach(async () => {
  for (const process of running.splice(0)) {
    process.kill('SIGKILL')
    await process.exited
  }
})
afterAll(() => rmSync(dataRoot, { recursive: true, force: true }))

describe('conclave agent --http', () => {
  it('serves the dashboard of the agent at the printed URL, and stops it with the agent', async () => {
    const agent = new RunningCli(['agent', '--name', 'web', '--http', '127.0.0.1:0'])
    running.push(agent)
    const line = await agent.line(/dashboard on (http:\/\/127\.0\.0\.1:\d+\/)$/)
    const url = /(http:\S+)$/.exec(line)![1]
    await agent.line(/member of the cluster/)
    const state = (await (await fetch(`${url}state`)).json()) as {
      agent: { name: string }
      members: { name: string; status: string; leader: boolean }[]
    }
    expect(state.agent.name).toBe('web')
    expect(state.members).toEqual([expect.objectContaining({ name: 'web', status: 'alive', leader: true })])
    expect((await fetch(url)).headers.get('content-type')).toMatch(/^text\/html/)
    agent.kill('SIGTERM')
    expect((await agent.exited).code).toBe(0)
    await expect(fetch(url)).rejects.toThrow()
  })

  it('refuses a malformed or busy address with one line naming --http, exit 2, before anything listens', async () => {
    const taken = createServer()
    await new Promise<void>(resolve => taken.listen(0, '127.0.0.1', resolve))
    const port = (taken.address() as { port: number }).port
    try {
      const [busy, malformed, badPort] = await Promise.all([
        cli(['agent', '--http', `127.0.0.1:${port}`]),
        cli(['agent', '--http', 'nonsense']),
        cli(['agent', '--http', '127.0.0.1:99999']),
      ])
      expect(busy.stderr).toBe(
        `UsageError: --http 127.0.0.1:${port}: cannot listen on 127.0.0.1:${port}: address in use\n`,
      )
      expect(malformed.stderr).toMatch(/^UsageError: --http nonsense: .*host:port.*\n$/)
      expect(badPort.stderr).toMatch(/^UsageError: --http 127\.0\.0\.1:99999: port .*\n$/)
      for (const result of [busy, malformed, badPort]) {
        expect(result.code).toBe(2)
        // Nothing listened: the agent never started.
        expect(result.stdout).toBe('')
      }
    } finally {
      taken.close()
    }
  })

  it('with SPIFFE identities, keeps to loopback unless --http-allow-remote', async () => {
    const td = trustDomain()
    const write = (name: string, text: string): string => {
      const path = join(dataRoot, name)
      writeFileSync(path, text)
      return path
    }
    const leaf = leafSvid(td.ca, `spiffe://${TD}/agent/web`)
    const flags = [
      '--svid',
      write('svid.pem', chainPem(leaf, td.ca)),
      '--svid-key',
      write('svid-key.pem', leaf.keyPem),
      '--trust-bundle',
      write('bundle.pem', td.root.pem),
    ]
    const refused = await cli(['agent', ...flags, '--http', '0.0.0.0:0'])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/^UsageError: --http 0\.0\.0\.0:0: with security on, .*loopback only.*\n$/)
    expect(refused.stdout).toBe('')
    const allowed = new RunningCli(['agent', ...flags, '--http', '0.0.0.0:0', '--http-allow-remote'])
    running.push(allowed)
    await allowed.line(/dashboard on http:\/\/0\.0\.0\.0:\d+\/$/)
  })
})
