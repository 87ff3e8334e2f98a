/**
 * The dashboard in a real browser (headless Chromium from the `@sparticuz/chromium` package, driven by
 * `puppeteer-core`): three agents on loopback TCP, the page of a non-leader, the leader stopped; the page
 * must show the new leader and the dead agent within the membership's detection bound. A failure saves a
 * screenshot and prints its path; `DASHBOARD_SCREENSHOT=<file.png>` saves one on success too.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import chromium from '@sparticuz/chromium'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { afterAll, describe, expect, it } from 'vitest'
import { detectionBound } from '../../src/agent/cluster/swim-wire.ts'
import type { ConclaveService } from '../../src/agent/service.ts'
import { listenDashboard, type PendingDashboard } from '../../src/http/server.ts'
import type { Agent, Dashboard, Lock, TaskWorker } from '../../src/index.ts'
import { createAgent, startDashboard } from '../../src/index.ts'
import { member, ScriptedSource } from './scripted-source.ts'

const agents: Agent[] = []
const workers: TaskWorker[] = []
let browser: Browser | undefined
let dashboard: Dashboard | undefined
let scripted: PendingDashboard | undefined

/** The browser, launched once for the file, at 1280x800. */
async function launch(): Promise<Browser> {
  browser ??= await puppeteer.launch({
    args: chromium.args,
    executablePath: await chromium.executablePath(),
    headless: true,
    defaultViewport: { width: 1280, height: 800 },
  })
  return browser
}

afterAll(async () => {
  await browser?.close()
  await dashboard?.close()
  await scripted?.close()
  await Promise.all(workers.map(worker => worker.close().catch(() => {})))
  await Promise.all(agents.map(agent => agent.stop()))
})

function serviceOf(agent: Agent): ConclaveService {
  return (agent.libp2p as Libp2p<{ conclave: ConclaveService }>).services.conclave
}

async function until(check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** Evaluates a JavaScript expression in the page (a string: the page's DOM types are not this project's). */
function inPage<T>(page: Page, expression: string): Promise<T> {
  return page.evaluate(expression) as Promise<T>
}

/** Equal counts, whatever the order of the keys. */
function same(a: Record<string, number>, b: Record<string, number>): boolean {
  const text = (counts: Record<string, number>) => JSON.stringify(Object.entries(counts).sort())
  return text(a) === text(b)
}

async function screenshot(page: Page | undefined, name: string, path?: string): Promise<string | undefined> {
  if (page === undefined) return undefined
  const file = path ?? join(mkdtempSync(join(tmpdir(), 'conclave-dashboard-')), `${name}.png`)
  await page.screenshot({ path: file as `${string}.png`, fullPage: false })
  return file
}

describe('the dashboard in a real browser', () => {
  it('shows the members, then the new leader and the dead agent after the leader stops', async () => {
    const startedAt = performance.now()
    for (let i = 0; i < 3; i++) agents.push(await createAgent({ name: `dash${i}`, concurrency: 4 }))
    await agents[0].join({ voters: 3 })
    for (const agent of agents.slice(1)) await agent.join({ bootstrap: agents[0].multiaddrs(), voters: 3 })
    await until(
      async () => (await agents[0].members()).filter(member => member.role === 'voter').length === 3,
    )
    const leader = agents.find(agent => agent.isLeader())!
    const viewer = agents.find(agent => agent !== leader)!
    const third = agents.find(agent => agent !== leader && agent !== viewer)!

    // Something in every panel: a lock with its fencing token, a named election, tasks finishing.
    const lock: Lock = await third.locks.acquire('dashboard/lock', 60_000)
    const election = viewer.elections('dashboard-election')
    await election.campaign()
    for (const agent of agents) {
      workers.push(agent.tasks.process(async () => ({ by: agent.name }), { concurrency: 2 }))
    }
    const submitted = await Promise.all(
      Array.from({ length: 20 }, (_, i) => leader.tasks.submit({ type: 'demo', payload: { i } })),
    )

    dashboard = await startDashboard(viewer, { port: 0 })
    expect(dashboard.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    const launchAt = performance.now()
    const page = await (await launch()).newPage()
    const pageErrors: string[] = []
    page.on('pageerror', err => pageErrors.push(String(err)))
    page.on('console', message => {
      if (message.type() === 'error') pageErrors.push(message.text())
    })
    try {
      await page.goto(dashboard.url, { waitUntil: 'domcontentloaded' })
      const launchMs = performance.now() - launchAt
      const leaderName = serviceOf(leader).name
      await page.waitForFunction(
        `document.querySelector('#leader-name')?.textContent === ${JSON.stringify(leaderName)} &&
         document.querySelectorAll('#members tbody tr[data-status="alive"]').length === 3`,
        { timeout: 10_000 },
      )
      // The lock with the holder's name and its fencing token, the election.
      await page.waitForFunction(
        `(() => {
          const lock = document.querySelector('#locks tr[data-key="dashboard/lock"]')
          const election = document.querySelector('#elections tr[data-name="dashboard-election"]')
          return lock?.textContent.includes(${JSON.stringify(serviceOf(third).name)}) &&
            lock.textContent.includes(${JSON.stringify(String(lock.fencingToken))}) &&
            election?.textContent.includes(${JSON.stringify(serviceOf(viewer).name)})
        })()`,
        { timeout: 10_000 },
      )
      // The tasks by state as the API tells them, once some have completed (the page lags by up to a picture).
      const apiCounts = async (): Promise<Record<string, number>> => {
        const counts: Record<string, number> = {}
        for (const task of submitted) {
          const { state } = await viewer.tasks.status(task.id)
          counts[state] = (counts[state] ?? 0) + 1
        }
        return counts
      }
      const pageCounts = (): Promise<Record<string, number>> =>
        inPage(
          page,
          `Object.fromEntries([...document.querySelectorAll('#task-states tr[data-state]')]
            .map(row => [row.dataset.state, Number(row.querySelector('td.count').textContent)])
            .filter(([, count]) => count > 0))`,
        )
      await until(async () => {
        const expected = await apiCounts()
        return (expected.completed ?? 0) > 0 && same(await pageCounts(), expected)
      }, 10_000)
      expect(await inPage<string>(page, `document.querySelector('#term').textContent`)).toBe(
        String(viewer.election.term()),
      )

      const bound = detectionBound(serviceOf(viewer).membership.config, 3)
      const stoppedAt = performance.now()
      await leader.stop() // no leave: to the others it goes silent
      await page.waitForFunction(
        `(() => {
          const id = document.querySelector('#leader-name')?.dataset.id
          const victim = document.querySelector('#members tr[data-id=${JSON.stringify(leader.id)}]')
          return id !== undefined && id !== '' && id !== ${JSON.stringify(leader.id)} &&
            victim?.dataset.status === 'dead'
        })()`,
        // The page gets a new picture at least once a second: the bound plus one picture.
        { timeout: bound + 1000, polling: 50 },
      )
      const shownAfter = performance.now() - stoppedAt
      const newLeader = await inPage<string>(page, `document.querySelector('#leader-name').dataset.id`)
      expect(newLeader).toBe((await viewer.leader())?.id)
      expect([viewer.id, third.id]).toContain(newLeader)
      const deadRow = await inPage<string>(
        page,
        `document.querySelector('#members tr[data-id="${leader.id}"]').textContent`,
      )
      expect(deadRow).toContain(leaderName)
      const feed = await inPage<string>(page, `document.querySelector('#feed').textContent`)
      expect(feed).toContain(`${leaderName} is dead`)
      expect(pageErrors).toEqual([])
      const saved = await screenshot(page, 'success', process.env.DASHBOARD_SCREENSHOT)
      console.log(
        `dashboard: browser up and page loaded in ${launchMs.toFixed(0)} ms; new leader and dead agent shown ${shownAfter.toFixed(0)} ms after the leader stopped (detection bound ${bound} ms); whole test ${((performance.now() - startedAt) / 1000).toFixed(1)} s${process.env.DASHBOARD_SCREENSHOT === undefined ? '' : `; screenshot ${saved}`}`,
      )
    } catch (err) {
      const file = await screenshot(page, 'failure').catch(() => undefined)
      console.log(`dashboard test failed; screenshot: ${file}; page errors: ${JSON.stringify(pageErrors)}`)
      throw err
    }
  })

  it('stays readable at 100 agents: the page fits 1280x800 and the member table scrolls', async () => {
    const source = new ScriptedSource()
    source.list = Array.from({ length: 100 }, (_, i) => ({
      ...member(
        i === 0 ? 'leader-id' : i === 1 ? 'self-id' : `agent-${i}`,
        `agent-${String(i).padStart(3, '0')}`,
        i < 5 ? 'voter' : 'nonvoter',
        i === 7 ? 'dead' : i === 9 ? 'suspect' : 'alive',
      ),
      load: (i % 10) / 10,
      spiffeId: `spiffe://example.org/agent/${i}`,
    }))
    scripted = await listenDashboard({ port: 0 })
    scripted.attach(source)
    const page = await (await launch()).newPage()
    try {
      await page.goto(scripted.url, { waitUntil: 'domcontentloaded' })
      await page.waitForFunction(`document.querySelectorAll('#members tbody tr').length === 100`, {
        timeout: 10_000,
      })
      const layout = await inPage<{ page: [number, number]; table: [number, number]; alive: string }>(
        page,
        `(() => {
          const scroll = document.querySelector('#members-panel .scroll')
          return {
            page: [document.documentElement.scrollWidth, document.documentElement.scrollHeight],
            table: [scroll.scrollHeight, scroll.clientHeight],
            alive: document.querySelector('#member-count').textContent,
          }
        })()`,
      )
      expect(layout.page[0]).toBeLessThanOrEqual(1280)
      expect(layout.page[1]).toBeLessThanOrEqual(800)
      expect(layout.table[0]).toBeGreaterThan(layout.table[1])
      expect(layout.alive).toBe('98 alive / 100')
      await screenshot(page, '100-agents', process.env.DASHBOARD_SCREENSHOT_100)
    } catch (err) {
      const file = await screenshot(page, 'failure-100').catch(() => undefined)
      console.log(`dashboard test failed; screenshot: ${file}`)
      throw err
    }
  })
})
