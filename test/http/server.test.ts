/**
 * The dashboard server and model against a scripted `DashboardSource` (no agents): addresses, the
 * loopback rule under `security`, an address in use, read-only HTTP, the event stream and the feed.
 */
import { request } from 'node:http'
import { createServer } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { InvalidArgumentError } from '../../src/errors.ts'
import { isLoopbackHost, parseHttpAddress } from '../../src/http/address.ts'
import { DashboardModel } from '../../src/http/model.ts'
import { DashboardListenError, listenDashboard, type PendingDashboard } from '../../src/http/server.ts'
import type { DashboardSource } from '../../src/http/source.ts'
import { member, ScriptedSource } from './scripted-source.ts'

const open: PendingDashboard[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map(dashboard => dashboard.close()))
})

async function serve(source?: DashboardSource, intervalMs = 100): Promise<PendingDashboard> {
  const dashboard = await listenDashboard({ port: 0, intervalMs })
  open.push(dashboard)
  if (source !== undefined) dashboard.attach(source)
  return dashboard
}

function get(
  url: string,
  options: { method?: string; host?: string } = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url)
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: options.method ?? 'GET',
        headers: options.host === undefined ? {} : { host: options.host },
      },
      response => {
        let body = ''
        response.setEncoding('utf8')
        response.on('data', chunk => {
          body += chunk
        })
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body }),
        )
      },
    )
    req.on('error', reject)
    req.end()
  })
}

/** Reads server-sent events from `/events` until `done` says enough. */
async function readEvents(
  url: string,
  done: (events: { event: string; data: unknown }[]) => boolean,
  ms = 5000,
): Promise<{ event: string; data: unknown }[]> {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), ms)
  const response = await fetch(`${url}events`, { signal: controller.signal })
  expect(response.headers.get('content-type')).toBe('text/event-stream')
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  const events: { event: string; data: unknown }[] = []
  let buffer = ''
  try {
    while (!done(events)) {
      const { value, done: ended } = await reader.read()
      if (ended) break
      buffer += value
      let end = buffer.indexOf('\n\n')
      while (end >= 0) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const event = /^event: (.*)$/m.exec(block)?.[1]
        const data = /^data: (.*)$/m.exec(block)?.[1]
        if (event !== undefined && data !== undefined) events.push({ event, data: JSON.parse(data) })
        end = buffer.indexOf('\n\n')
      }
    }
  } finally {
    clearTimeout(timer)
    controller.abort()
  }
  return events
}

describe('dashboard addresses', () => {
  it('parses host:port, [v6]:port and a bare port; refuses the rest with InvalidArgumentError', () => {
    expect(parseHttpAddress('127.0.0.1:7070')).toEqual({ host: '127.0.0.1', port: 7070 })
    expect(parseHttpAddress('[::1]:80')).toEqual({ host: '::1', port: 80 })
    expect(parseHttpAddress('localhost:0')).toEqual({ host: 'localhost', port: 0 })
    expect(parseHttpAddress('7070')).toEqual({ host: '127.0.0.1', port: 7070 })
    for (const bad of [
      '',
      '127.0.0.1',
      '127.0.0.1:70000',
      ':7070',
      '::1:7070',
      'bad host:1',
      '1.2.3.4:x',
      '[nope]:1',
    ]) {
      expect(() => parseHttpAddress(bad), bad).toThrow(InvalidArgumentError)
    }
  })

  it('knows loopback from the rest', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) {
      expect(isLoopbackHost(host), host).toBe(true)
    }
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.org']) {
      expect(isLoopbackHost(host), host).toBe(false)
    }
  })

  it('with security on, refuses a non-loopback bind unless allowed, before listening', async () => {
    await expect(listenDashboard({ host: '0.0.0.0', secured: true })).rejects.toThrow(/loopback only/)
    const allowed = await listenDashboard({ host: '0.0.0.0', port: 0, secured: true, allowRemote: true })
    open.push(allowed)
    expect(allowed.url).toMatch(/^http:\/\/0\.0\.0\.0:\d+\/$/)
    const plain = await listenDashboard({ host: '0.0.0.0', port: 0 })
    open.push(plain)
  })

  it('says an address in use is in use, as a typed error', async () => {
    const taken = createServer()
    await new Promise<void>(resolve => taken.listen(0, '127.0.0.1', resolve))
    const port = (taken.address() as { port: number }).port
    try {
      const failure = await listenDashboard({ port }).catch((err: unknown) => err)
      expect(failure).toBeInstanceOf(DashboardListenError)
      expect(failure).toBeInstanceOf(InvalidArgumentError)
      expect((failure as Error).message).toBe(`cannot listen on 127.0.0.1:${port}: address in use`)
    } finally {
      taken.close()
    }
    await expect(listenDashboard({ port: 70_000 })).rejects.toThrow(InvalidArgumentError)
    await expect(listenDashboard({ host: 'not a host' })).rejects.toThrow(InvalidArgumentError)
  })
})

describe('dashboard server', () => {
  it('serves the page and its assets with a strict content security policy, and nothing else', async () => {
    const dashboard = await serve(new ScriptedSource())
    const page = await get(dashboard.url)
    expect(page.status).toBe(200)
    expect(page.headers['content-type']).toMatch(/^text\/html/)
    expect(page.headers['content-security-policy']).toContain("default-src 'none'")
    expect(page.body).toContain('<script src="dashboard.js"')
    expect(page.body).not.toMatch(/https?:\/\//)
    for (const asset of ['dashboard.js', 'dashboard.css', 'favicon.svg']) {
      const response = await get(`${dashboard.url}${asset}`)
      expect(response.status, asset).toBe(200)
      expect(response.body.length, asset).toBeGreaterThan(0)
    }
    expect((await get(`${dashboard.url}../package.json`)).status).toBe(404)
    expect((await get(`${dashboard.url}nope`)).status).toBe(404)
  })

  it('is read-only and, on loopback, answers loopback host names only', async () => {
    const dashboard = await serve(new ScriptedSource())
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const response = await get(dashboard.url, { method })
      expect(response.status, method).toBe(405)
      expect(response.headers.allow).toBe('GET, HEAD')
    }
    expect((await get(dashboard.url, { host: 'evil.example:80' })).status).toBe(403)
    expect((await get(dashboard.url, { host: 'localhost:1234' })).status).toBe(200)
  })

  it('answers /state with the picture, and says "starting" until an agent is attached', async () => {
    const dashboard = await serve()
    expect((await get(`${dashboard.url}state`)).status).toBe(503)
    const source = new ScriptedSource()
    dashboard.attach(source)
    const state = JSON.parse((await get(`${dashboard.url}state`)).body)
    expect(state).toMatchObject({
      agent: { id: 'self-id', name: 'self' },
      leader: { id: 'leader-id', name: 'boss' },
      term: 4,
      healthy: true,
      replication: { commit: 10, applied: 9, lastIndex: 10, fromLeader: false },
    })
    expect(state.members.map((row: { name: string }) => row.name)).toEqual(['boss', 'self'])
    expect(state.members[1]).toMatchObject({ self: true, leader: false, replica: true, status: 'alive' })
    expect(() => dashboard.attach(source)).toThrow(InvalidArgumentError)
  })

  it('pushes pictures and the feed as server-sent events: a leader change and a death', async () => {
    const source = new ScriptedSource()
    const dashboard = await serve(source)
    const events = readEvents(dashboard.url, seen =>
      seen.some(
        item =>
          item.event === 'state' &&
          (item.data as { leader?: { id: string }; members: { status: string }[] }).leader?.id ===
            'self-id' &&
          (item.data as { members: { status: string }[] }).members.some(row => row.status === 'dead'),
      ),
    )
    await new Promise(resolve => setTimeout(resolve, 300))
    source.list = [member('leader-id', 'boss', 'voter', 'dead'), member('self-id', 'self', 'voter')]
    source.emit({ kind: 'member', change: 'suspect', id: 'leader-id', name: 'boss', at: Date.now() })
    source.emit({ kind: 'member', change: 'dead', id: 'leader-id', name: 'boss', at: Date.now() })
    source.leader = 'self-id'
    source.term = 5
    source.emit({ kind: 'leader', leader: 'self-id', term: 5, at: Date.now() })
    const seen = await events
    const feed = seen
      .filter(item => item.event === 'feed')
      .flatMap(item => item.data as { kind: string; text: string }[])
    expect(feed.map(entry => entry.text)).toEqual([
      'boss is suspected',
      'boss is dead',
      'self took over from boss (dead), term 5',
    ])
    expect(feed.map(entry => entry.kind)).toEqual(['suspect', 'dead', 'failover'])
    const last = seen.filter(item => item.event === 'state').at(-1)!.data as {
      term: number
      healthy: boolean
    }
    expect(last).toMatchObject({ term: 5, healthy: false })
  })

  it('closes its event streams and stops listening on close()', async () => {
    const dashboard = await serve(new ScriptedSource())
    const response = await fetch(`${dashboard.url}events`)
    const reader = response.body!.getReader()
    await reader.read()
    await dashboard.close()
    let ended = false
    for (let i = 0; i < 10 && !ended; i++) ended = (await reader.read()).done
    expect(ended).toBe(true)
    await expect(fetch(dashboard.url)).rejects.toThrow()
  })
})

describe('dashboard signal', () => {
  it('closes the dashboard when its signal aborts, and refuses one already aborted', async () => {
    const controller = new AbortController()
    const dashboard = await listenDashboard({ port: 0, signal: controller.signal })
    expect((await get(dashboard.url)).status).toBe(200)
    controller.abort()
    await new Promise(resolve => setTimeout(resolve, 50))
    await expect(get(dashboard.url)).rejects.toThrow()
    await expect(listenDashboard({ signal: AbortSignal.abort() })).rejects.toThrow(InvalidArgumentError)
  })
})

describe('dashboard model', () => {
  it('records leader spans, ignores late reports of an older term, and buckets throughput per second', async () => {
    let now = 1_000_000
    const source = new ScriptedSource()
    const model = new DashboardModel(source, { now: () => now })
    model.start()
    source.emit({ kind: 'leader', leader: '', term: 5, at: now })
    source.emit({ kind: 'leader', leader: 'leader-id', term: 4, at: now })
    now += 500
    source.emit({ kind: 'leader', leader: 'self-id', term: 5, at: now })
    for (let i = 0; i < 3; i++) source.emit({ kind: 'task', outcome: 'completed', at: now })
    source.emit({ kind: 'task', outcome: 'failed', at: now + 1000 })
    const state = await model.refresh()
    expect(state.leaders.map(span => [span.leader, span.term])).toEqual([
      ['leader-id', 4],
      ['', 5],
      ['self-id', 5],
    ])
    expect(state.throughput).toEqual([
      { at: 1_000_000, completed: 3, failed: 0 },
      { at: 1_001_000, completed: 0, failed: 1 },
    ])
    expect(model.feed().map(entry => entry.text)).toEqual(['no leader (term 5)', 'self leads, term 5'])
  })

  it('shows locks and elections with holder names and lease left, and says what the agent does not expose', async () => {
    const source = new ScriptedSource()
    let now = 4000
    const model = new DashboardModel(source, { now: () => now })
    const bare = await model.refresh()
    expect(bare.notes).toContain('locks, elections, tasks: not exposed by this agent')
    source.coordinationView = {
      time: 5000,
      locks: [{ key: 'k', holder: 'leader-id', fencingToken: 42, expiresAt: 8000, waiters: 2 }],
      elections: [{ name: 'e', term: 3, leader: 'self-id', candidates: 2 }],
      tasks: { pending: 1, assigned: 2, running: 3, completed: 4, failed: 0, dead: 0, expired: 0 },
    }
    now = 5000
    const state = await model.refresh()
    expect(state.locks).toEqual([
      { key: 'k', holder: 'leader-id', holderName: 'boss', fencingToken: 42, expiresInMs: 3000, waiters: 2 },
    ])
    expect(state.elections).toEqual([
      { name: 'e', term: 3, leader: 'self-id', leaderName: 'self', candidates: 2 },
    ])
    expect(state.tasks?.running).toBe(3)
    // Read again only after the interval: a pass over a large state is not made for every picture.
    source.coordinationView = { ...source.coordinationView, locks: [] }
    now = 5500
    expect((await model.refresh()).locks).toHaveLength(1)
    now = 6000
    expect((await model.refresh()).locks).toEqual([])
  })
})
