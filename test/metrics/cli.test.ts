/**
 * `conclave agent --metrics` and `--log-format json`: a CLI agent's /metrics scraped over HTTP, its address
 * checked before anything listens, and its structured log lines.
 */
import { createServer } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { cli, RunningCli } from '../cli/helpers.ts'
import { sample } from './prometheus-text.ts'

const running: RunningCli[] = []

afterEach(async () => {
  for (const process of running.splice(0)) {
    process.kill('SIGKILL')
    await process.exited
  }
})

describe('conclave agent --metrics', () => {
  it('serves conclave and process metrics at /metrics in Prometheus text, and logs JSON lines', async () => {
    const agent = new RunningCli([
      'agent',
      '--name',
      'scraped',
      '--metrics',
      '127.0.0.1:0',
      '--log-format',
      'json',
    ])
    running.push(agent)
    const started = JSON.parse(await agent.line(/"event":"metrics"/)) as { url: string }
    expect(started.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    await agent.line(/"event":"joined"/)
    // Every line one JSON object with the level, time, event and agent.
    for (const line of agent.lines) {
      const entry = JSON.parse(line) as Record<string, unknown>
      expect(entry).toMatchObject({ level: 'info', event: expect.any(String), agent: 'scraped' })
      expect(Date.parse(entry.time as string)).toBeGreaterThan(0)
    }
    const scrape = async (): Promise<string> => {
      const response = await fetch(started.url)
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
      return response.text()
    }
    let text = await scrape()
    for (const name of [
      'conclave_raft_term',
      'conclave_raft_commit_index',
      'conclave_raft_applied_index',
      'conclave_raft_apply_lag',
      'conclave_sessions',
      'conclave_locks_held',
      'conclave_lock_waiters',
      'conclave_swim_suspicions_total',
      'conclave_swim_deaths_total',
      'conclave_swim_refutations_total',
      'conclave_raft_leader_changes_total',
      'process_cpu_user_seconds_total',
    ]) {
      expect(text, name).toMatch(new RegExp(`^# HELP ${name} `, 'm'))
    }
    expect(sample(text, 'conclave_raft_term')).toBeGreaterThanOrEqual(1)
    expect(sample(text, 'conclave_raft_is_leader')).toBe(1)
    expect(sample(text, 'conclave_sessions')).toBe(1)
    const commit = sample(text, 'conclave_raft_commit_index')!
    // A write through the CLI client raises the commit index and is timed as a proposal of this agent.
    const listening = agent.lines.find(line => line.includes('"event":"listening"'))!
    const { address } = JSON.parse(listening) as { address: string }
    const put = await cli(['kv', 'put', 'metrics/key', 'value', '--peer', address])
    expect(put.code, put.stderr).toBe(0)
    text = await scrape()
    expect(sample(text, 'conclave_raft_commit_index')).toBeGreaterThan(commit)
    expect(sample(text, 'conclave_kv_keys')).toBe(1)
    expect(sample(text, 'conclave_proposal_duration_seconds_count', { command: 'put' })).toBe(1)
    agent.kill('SIGTERM')
    expect((await agent.exited).code).toBe(0)
    expect(JSON.parse(agent.lines.at(-1)!)).toMatchObject({ event: 'stopped', agent: 'scraped' })
    await expect(fetch(started.url)).rejects.toThrow()
  })

  it('refuses a malformed or busy address, or a bad log format, with one line naming the option, exit 2, before anything listens', async () => {
    const taken = createServer()
    await new Promise<void>(resolve => taken.listen(0, '127.0.0.1', resolve))
    const port = (taken.address() as { port: number }).port
    try {
      const [busy, malformed, badPort, badFormat] = await Promise.all([
        cli(['agent', '--metrics', `127.0.0.1:${port}`]),
        cli(['agent', '--metrics', 'nonsense']),
        cli(['agent', '--metrics', '127.0.0.1:99999']),
        cli(['agent', '--log-format', 'yaml']),
      ])
      expect(busy.stderr).toBe(
        `UsageError: --metrics 127.0.0.1:${port}: cannot listen on 127.0.0.1:${port}: address in use\n`,
      )
      expect(malformed.stderr).toMatch(/^UsageError: --metrics nonsense: .*host:port.*\n$/)
      expect(badPort.stderr).toMatch(/^UsageError: --metrics 127\.0\.0\.1:99999: port .*\n$/)
      expect(badFormat.stderr).toBe('UsageError: --log-format yaml: expected text or json\n')
      for (const result of [busy, malformed, badPort, badFormat]) {
        expect(result.code).toBe(2)
        expect(result.stdout).toBe('')
      }
    } finally {
      taken.close()
    }
  })
})
