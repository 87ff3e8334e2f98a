import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Agent, LeaderEvent } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'
import { BIN, type CliResult, cli, RunningCli, until } from './helpers.ts'

// The v0.2 KV, election and semaphore commands as a child process against two agents in this process.
let agents: Agent[]
let peer: string
let dir: string
const node = process.execPath

beforeAll(async () => {
  agents = [await createAgent({ name: 'p0' }), await createAgent({ name: 'p1' })]
  await agents[0].join({})
  await agents[1].join({ bootstrap: agents[0].multiaddrs() })
  await until(
    async () => (await agents[0].members()).filter(member => member.status === 'alive').length === 2,
  )
  // The follower serves the CLI: every write goes through forwarding, every read through its replica.
  peer = agents[1].multiaddrs()[0]
  dir = await mkdtemp(join(tmpdir(), 'conclave-kv-cli-'))
})

afterAll(async () => {
  await Promise.all((agents ?? []).map(agent => agent.stop()))
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

/** `conclave ...args` with `input` on its standard input. */
function cliWithInput(args: string[], input: string): Promise<CliResult> {
  const started = performance.now()
  const env = { ...process.env }
  delete env.CONCLAVE_PEER
  const child = spawn(process.execPath, [BIN, ...args], { env })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', chunk => {
    stdout += chunk
  })
  child.stderr.on('data', chunk => {
    stderr += chunk
  })
  child.stdin.end(input)
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', code => resolve({ code, stdout, stderr, ms: performance.now() - started }))
  })
}

describe('conclave kv list, get --entry, txn', () => {
  it('lists the keys under a prefix in byte order across pages, with --limit and --after, in text and JSON', async () => {
    const keys = Array.from({ length: 1_203 }, (_, i) => `ls/${String(i).padStart(4, '0')}`)
    for (let i = 0; i < keys.length; i += 100) {
      await agents[0].consensus.transaction({
        compare: [],
        success: keys.slice(i, i + 100).map(key => ({ type: 'put' as const, key, value: { key } })),
      })
    }
    await agents[0].consensus.propose('lt/outside', 1)
    const text = await cli(['kv', 'list', 'ls/', '--peer', peer])
    expect(text.code).toBe(0)
    const lines = text.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(keys.length)
    expect(lines[0]).toMatch(/^ls\/0000 \{"key":"ls\/0000"\} \(revision \d+\)$/)
    expect(lines.map(line => line.split(' ')[0])).toEqual(keys)

    const json = await cli([
      'kv',
      'list',
      'ls/',
      '--limit',
      '1001',
      '--after',
      'ls/0100',
      '--json',
      '--peer',
      peer,
    ])
    expect(json.code).toBe(0)
    const page = JSON.parse(json.stdout)
    expect(page.prefix).toBe('ls/')
    expect(page.revision).toBeGreaterThanOrEqual((await agents[0].consensus.getEntry('lt/outside'))!.revision)
    expect(page.entries.map((entry: { key: string }) => entry.key)).toEqual(keys.slice(101, 1102))
    expect(page.entries[0]).toMatchObject({ value: { key: 'ls/0101' }, version: 1, ephemeral: false })

    const none = await cli(['kv', 'list', 'nothing-here/', '--peer', peer])
    expect(none).toMatchObject({ code: 0, stdout: '' })
  })

  it('get --entry prints the revisions and version; absent keys exit 1', async () => {
    await agents[0].consensus.propose('entry-key', 'one')
    const { revision } = await agents[0].consensus.propose('entry-key', { n: 2 })
    const text = await cli(['kv', 'get', 'entry-key', '--entry', '--peer', peer])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(
      new RegExp(`^\\{"n":2\\} \\(revision ${revision}, created \\d+, version 2\\)\\n$`),
    )
    const json = await cli(['kv', 'get', 'entry-key', '--entry', '--json', '--peer', peer])
    expect(JSON.parse(json.stdout)).toEqual(await agents[0].consensus.getEntry('entry-key'))
    const absent = await cli(['kv', 'get', 'no-such-entry', '--entry', '--peer', peer])
    expect(absent.code).toBe(1)
    expect(absent.stderr).toMatch(/^NotFoundError: /)
  })

  it('txn from a file and from stdin: compares decide the branch, all at one revision', async () => {
    const a = await agents[0].consensus.propose('acct/a', 100)
    await agents[0].consensus.propose('acct/b', 0)
    const transfer = {
      compare: [
        { key: 'acct/a', target: 'revision', op: '==', value: a.revision },
        { key: 'acct/b', target: 'value', op: '==', value: 0 },
      ],
      success: [
        { type: 'put', key: 'acct/a', value: 60 },
        { type: 'put', key: 'acct/b', value: 40 },
      ],
      failure: [{ type: 'put', key: 'acct/failed', value: true }],
    }
    const file = join(dir, 'txn.json')
    await writeFile(file, JSON.stringify(transfer))
    const first = await cli(['kv', 'txn', file, '--peer', peer])
    expect(first.code).toBe(0)
    const revision = Number(first.stdout.match(/^SUCCEEDED revision (\d+)\n$/)?.[1])
    expect((await agents[0].consensus.getEntry('acct/a'))?.revision).toBe(revision)
    expect((await agents[0].consensus.getEntry('acct/b'))?.revision).toBe(revision)
    expect(await agents[0].consensus.get('acct/a')).toBe(60)

    // The same request again: the compares no longer hold, the failure branch runs.
    const again = await cliWithInput(
      ['kv', 'txn', '--json', '--require-success', '--peer', peer],
      JSON.stringify(transfer),
    )
    expect(again.code).toBe(2)
    expect(JSON.parse(again.stdout)).toMatchObject({ succeeded: false })
    expect(await agents[0].consensus.get('acct/failed')).toBe(true)
    expect(await agents[0].consensus.get('acct/a')).toBe(60)
  })

  it('refuses a bad transaction with one typed error line, writing nothing', async () => {
    const before = (await agents[0].consensus.list('bad/')).revision
    const cases: [string, string][] = [
      ['not json', 'UsageError'],
      [JSON.stringify({ compare: [], success: [] }), 'InvalidArgumentError'],
      [
        JSON.stringify({
          compare: [{ key: 'bad/x', target: 'colour', op: '==', value: 1 }],
          success: [{ type: 'put', key: 'bad/x', value: 1 }],
        }),
        'InvalidArgumentError',
      ],
      [
        JSON.stringify({
          compare: [],
          success: [
            { type: 'put', key: 'bad/x', value: 1 },
            { type: 'delete', key: 'bad/x' },
          ],
        }),
        'InvalidArgumentError',
      ],
      [
        JSON.stringify({ compare: [], success: [{ type: 'put', key: 'bad/x', value: 1, ephemeral: true }] }),
        'InvalidArgumentError',
      ],
    ]
    for (const [input, name] of cases) {
      const result = await cliWithInput(['kv', 'txn', '-', '--peer', peer], input)
      expect(result.code, input).not.toBe(0)
      expect(result.stderr.trimEnd().split('\n'), input).toHaveLength(1)
      expect(result.stderr.startsWith(`${name}: `), `${input}: ${result.stderr}`).toBe(true)
    }
    expect(await agents[0].consensus.get('bad/x')).toBeUndefined()
    expect((await agents[0].consensus.list('bad/')).revision).toBe(before)
  })
})

describe('conclave elect --value and lock --permits', () => {
  it('elect --value: every watcher of the election sees the leader with its value', async () => {
    const controller = new AbortController()
    const watch = agents[0]
      .elections('cli-valued')
      .watch({ signal: controller.signal })
      [Symbol.asyncIterator]()
    const holder = new RunningCli([
      'elect',
      'cli-valued',
      '--value',
      '{"addr":"10.0.0.7:8080"}',
      '--peer',
      peer,
      '--',
      node,
      '-e',
      'console.log("leading"); setTimeout(() => {}, 60000)',
    ])
    await holder.line(/^leading$/)
    const event = (await watch.next()).value as LeaderEvent
    expect(event).toMatchObject({ type: 'elected', leaderId: agents[1].id, value: { addr: '10.0.0.7:8080' } })
    holder.kill('SIGTERM')
    await holder.exited
    controller.abort()
    const bad = await cli(['elect', 'cli-valued', '--value', '{oops', '--peer', peer, '--', node, '-e', ''])
    expect(bad.code).not.toBe(0)
    expect(bad.stderr).toMatch(/^UsageError: --value is not JSON/)
  })

  it('lock --permits 2: two holders at once, the third waits for a permit', async () => {
    const hold = (): RunningCli =>
      new RunningCli([
        'lock',
        'cli-sem',
        '--permits',
        '2',
        '--peer',
        peer,
        '--',
        node,
        '-e',
        'console.log("token", process.env.CONCLAVE_LOCK_TOKEN); setTimeout(() => {}, 60000)',
      ])
    const first = hold()
    const second = hold()
    const tokens = [await first.line(/^token \d+$/), await second.line(/^token \d+$/)]
    expect(new Set(tokens).size).toBe(2)
    const third = hold()
    await new Promise(resolve => setTimeout(resolve, 1_000))
    expect(third.lines).toEqual([])
    first.kill('SIGTERM')
    await first.exited
    const line = await third.line(/^token \d+$/)
    expect(tokens).not.toContain(line)
    // Another count on a key held as a semaphore of 2 is refused by the cluster; --permits 0 by the parser.
    const other = await cli([
      'lock',
      'cli-sem',
      '--permits',
      '3',
      '--wait',
      '5s',
      '--peer',
      peer,
      '--',
      node,
      '-e',
      '',
    ])
    expect(other.code).not.toBe(0)
    expect(other.stderr).toMatch(/^InvalidArgumentError: /)
    for (const run of [second, third]) {
      run.kill('SIGTERM')
      await run.exited
    }
    const zero = await cli(['lock', 'cli-sem', '--permits', '0', '--peer', peer, '--', node, '-e', ''])
    expect(zero.code).not.toBe(0)
    expect(zero.stderr).toMatch(/^UsageError: /)
  })
})
