import type { GossipSub } from '@libp2p/gossipsub'
import type { Libp2p } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import type { TaskProcessor, TaskWorkerEventDetail } from '../../src/agent/api/tasks/worker.ts'
import { encodeAdvert, parseAdvert } from '../../src/agent/api/work-stealing-codec.ts'
import type { Agent, AgentOptions, ClaimedTask } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'

const agents: Agent[] = []
const workers: TaskProcessor[] = []

afterEach(async () => {
  await Promise.all(workers.splice(0).map(worker => worker.close()))
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})

async function start(options: AgentOptions[]): Promise<Agent[]> {
  const started: Agent[] = []
  for (const agentOptions of options) {
    const agent = await createAgent({ transport: 'memory', ...agentOptions })
    agents.push(agent)
    started.push(agent)
  }
  await started[0].join({})
  for (const agent of started.slice(1)) await agent.join({ bootstrap: started[0].multiaddrs() })
  return started
}

async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

function pubsubOf(agent: Agent): GossipSub {
  return (agent.libp2p as Libp2p<{ pubsub: GossipSub }>).services.pubsub
}

function workTopicOf(agent: Agent): string {
  const topic = pubsubOf(agent)
    .getTopics()
    .find(name => name.endsWith('/work/1.0.0'))
  if (topic === undefined) throw new Error('not subscribed to the work topic')
  return topic
}

const encoder = new TextEncoder()

describe('work stealing', () => {
  it('drains a slow agent faster once the idle agents steal, with no task run twice, whatever the adverts', async () => {
    // `slow` accepts 64 tasks but runs 2 at a time; the others run 2 each and are idle.
    const [slow, idle1, idle2] = await start([
      { name: 'slow', concurrency: 64 },
      { name: 'idle1', concurrency: 4 },
      { name: 'idle2', concurrency: 4 },
    ])
    const runs = new Map<string, number>()
    const ranOn = new Map<string, string>()
    const handler = (agent: Agent) => async (task: ClaimedTask) => {
      runs.set(task.id, (runs.get(task.id) ?? 0) + 1)
      ranOn.set(task.id, agent.name)
      await new Promise(resolve => setTimeout(resolve, 60))
      return agent.name
    }
    const accepted = new Set<string>()
    for (const agent of [slow, idle1, idle2]) {
      const processor = agent.tasks.process(handler(agent), { concurrency: 2 }) as TaskProcessor
      processor.addEventListener('completed', event => {
        accepted.add((event as CustomEvent<TaskWorkerEventDetail>).detail.task!.id)
      })
      workers.push(processor)
    }

    /** Submits `count` tasks that prefer `slow` (so all are assigned to it) and times them to completion. */
    const batch = async (prefix: string, count = 36): Promise<{ ms: number; ids: string[] }> => {
      const ids = Array.from({ length: count }, (_, i) => `${prefix}${i}`)
      const begin = performance.now()
      await Promise.all(
        ids.map(id => slow.tasks.submit({ id, type: 'work', constraints: { preferredAgents: ['slow'] } })),
      )
      await until(() => ids.every(id => accepted.has(id)))
      return { ms: performance.now() - begin, ids }
    }

    const alone = await batch('alone-')
    expect(alone.ids.every(id => ranOn.get(id) === 'slow')).toBe(true)

    await idle1.workStealing.enable()
    await idle2.workStealing.enable()
    const stealing = await batch('steal-')
    const stolen = stealing.ids.filter(id => ranOn.get(id) !== 'slow').length
    expect(stolen).toBeGreaterThan(0)
    expect(stealing.ms).toBeLessThan(alone.ms * 0.6)

    // Faults in the hints: `slow` drops half its adverts and sends the rest three times; garbage and forged
    // adverts, and adverts naming running, finished and unknown tasks, are published by hand.
    const slowPubsub = pubsubOf(slow)
    const publish = slowPubsub.publish.bind(slowPubsub)
    let coin = 0
    slowPubsub.publish = (async (topic: string, data: Uint8Array) => {
      if (coin++ % 2 === 0) return { recipients: [] }
      await publish(topic, data)
      await publish(topic, data)
      return publish(topic, data)
    }) as typeof slowPubsub.publish
    const topic = workTopicOf(idle1)
    let injecting = true
    const garbage = (async () => {
      const idlePubsub = pubsubOf(idle2)
      for (let round = 0; injecting && round < 10; round++) {
        const junk: Uint8Array[] = [
          encoder.encode('not json'),
          new Uint8Array([0xff, 0xfe, 0x00]),
          encoder.encode(JSON.stringify({ agentId: slow.id, load: 'high', surplus: [] })),
          encoder.encode(JSON.stringify({ agentId: slow.id, load: 1, surplus: 'steal-1' })),
          encoder.encode(JSON.stringify({ agentId: slow.id, load: -1, surplus: [] })),
          encoder.encode(JSON.stringify([slow.id])),
          encodeAdvert({
            agentId: slow.id,
            load: 99,
            surplus: ['alone-1', 'no-such-task', `faults-${round}`],
          }),
          encodeAdvert({ agentId: idle1.id, load: 99, surplus: [`faults-${round}`] }),
        ]
        for (const data of junk) {
          await publish(topic, data).catch(() => {})
          await idlePubsub.publish(topic, data).catch(() => {})
        }
        await new Promise(resolve => setTimeout(resolve, 50))
      }
    })()
    const faulty = await batch('faults-')
    injecting = false
    await garbage
    // Correctness is the point here; stealing still happens, however noisy the hints.
    const stolenDespiteFaults = faulty.ids.filter(id => ranOn.get(id) !== 'slow').length
    expect(stolenDespiteFaults).toBeGreaterThan(0)

    // Exactly once, every batch, every agent.
    const all = [...alone.ids, ...stealing.ids, ...faulty.ids]
    for (const id of all) expect(runs.get(id), id).toBe(1)
    for (const id of all) {
      expect(await idle2.tasks.status(id)).toMatchObject({
        state: 'completed',
        attempt: 1,
        result: ranOn.get(id),
      })
    }
    console.log(
      `36 tasks of 60 ms queued on one agent running 2 at a time: ${alone.ms.toFixed(0)} ms alone, ` +
        `${stealing.ms.toFixed(0)} ms with 2 idle agents stealing (${stolen} stolen, ` +
        `${(alone.ms / stealing.ms).toFixed(2)}x), ${faulty.ms.toFixed(0)} ms with dropped, tripled and ` +
        `garbage adverts (${stolenDespiteFaults} stolen)`,
    )
  })

  it('steals explicitly through the log, only what is assigned, waiting and allowed', async () => {
    const [busy, thief, picky] = await start([
      { name: 'busy', concurrency: 20 },
      { name: 'thief', concurrency: 4 },
      { name: 'picky', concurrency: 4, capabilities: ['gpu'] },
    ])
    const ids: string[] = []
    for (let i = 0; i < 5; i++) {
      const constraints = { preferredAgents: ['busy'], excludeAgents: i === 0 ? ['thief', 'picky'] : [] }
      ids.push((await busy.tasks.submit({ id: `x${i}`, type: 'work', priority: i, constraints })).id)
    }
    // A worker on `busy` runs one task at a time and holds on to each: it starts the best (x4), and the
    // others, placed on busy (the only agent running a worker, so offering its slots), stay assigned.
    const holds: (() => void)[] = []
    let holding = true
    const started: ClaimedTask[] = []
    const busyWorker = busy.tasks.process(
      async task => {
        started.push(task)
        if (holding) await new Promise<void>(resolve => holds.push(resolve))
        return 'ok'
      },
      { concurrency: 1 },
    )
    workers.push(busyWorker as TaskProcessor)
    await until(() => started.length === 1)
    const running = started[0]
    expect(running.id).toBe('x4')
    await until(async () => {
      const states = await Promise.all(['x0', 'x1', 'x2', 'x3'].map(id => busy.tasks.status(id)))
      return states.every(status => status.state === 'assigned' && status.assignee === busy.id)
    })
    // The best task thief may run: x4 runs, x0 excludes it, so x3.
    const taken = await thief.workStealing.steal('busy')
    expect(taken?.id).toBe('x3')
    expect(await busy.tasks.status('x3')).toMatchObject({ state: 'assigned', assignee: thief.id })
    expect(await thief.workStealing.steal(busy.id)).toMatchObject({ id: 'x2' })
    // Nothing waits on picky; a steal from oneself or from an idle agent finds nothing.
    expect(await thief.workStealing.steal('picky')).toBeUndefined()
    expect(await thief.workStealing.steal('thief')).toBeUndefined()
    await expect(thief.workStealing.steal('nobody')).rejects.toMatchObject({ name: 'NotFoundError' })
    await expect(thief.workStealing.steal('')).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    // x0 may go to neither, and running x4 to nobody.
    expect(await picky.workStealing.steal('busy')).toMatchObject({ id: 'x1' })
    expect(await picky.workStealing.steal('busy')).toBeUndefined()
    expect(await busy.tasks.status('x0')).toMatchObject({ state: 'assigned', assignee: busy.id })
    expect(await busy.tasks.status('x4')).toMatchObject({ state: 'running', assignee: busy.id })
    expect(running.signal.aborted).toBe(false)

    // An offer is a hint: enabled idle agents take the offered task, through the log.
    holds.shift()?.()
    await until(async () => (await busy.tasks.status('x4')).state === 'completed')
    const offered = await busy.tasks.submit({
      id: 'offered',
      type: 'work',
      constraints: { preferredAgents: ['busy'] },
    })
    const ran: string[] = []
    const processor = picky.tasks.process(async task => {
      ran.push(task.id)
      return null
    })
    workers.push(processor as TaskProcessor)
    await until(() => ran.includes('x1'))
    await picky.workStealing.enable()
    await busy.workStealing.offer(offered)
    await until(() => ran.includes('offered'))
    // The handler has started; its completion commits after it returns.
    const settled = new Set(['completed', 'failed', 'dead', 'expired'])
    await until(async () => settled.has((await busy.tasks.status('offered')).state))
    expect(await busy.tasks.status('offered')).toMatchObject({ state: 'completed', assignee: picky.id })
    await expect(busy.workStealing.offer(null as never)).rejects.toMatchObject({
      name: 'InvalidArgumentError',
    })
    holding = false
    for (const release of holds.splice(0)) release()
  })

  it('advertises surplus only while some agent steals, and at once when the first one says so', async () => {
    // `busy` runs one task at a time and holds it: the others wait assigned to it, its surplus.
    const [busy, watcher, thief] = await start([
      { name: 'busy', concurrency: 8 },
      { name: 'watcher', concurrency: 2 },
      { name: 'thief', concurrency: 2 },
    ])
    const topic = workTopicOf(watcher)
    const surplusAdverts: string[][] = []
    pubsubOf(watcher).addEventListener('message', event => {
      const { topic: on, data } = event.detail
      const advert = on === topic ? parseAdvert(data) : undefined
      if (advert !== undefined && advert.agentId === busy.id && advert.surplus.length > 0) {
        surplusAdverts.push(advert.surplus)
      }
    })
    const holds: (() => void)[] = []
    let holding = true
    const busyWorker = busy.tasks.process(
      async () => {
        if (holding) await new Promise<void>(resolve => holds.push(resolve))
        return 'ok'
      },
      { concurrency: 1 },
    )
    workers.push(busyWorker as TaskProcessor)
    const constraints = { preferredAgents: ['busy'] }
    for (let i = 0; i < 4; i++) await busy.tasks.submit({ id: `s${i}`, type: 'work', constraints })
    await until(async () => {
      const states = await Promise.all(['s0', 's1', 's2', 's3'].map(id => busy.tasks.status(id)))
      return states.filter(status => status.state === 'assigned').length === 3
    })
    try {
      // Nobody steals: more than the advert delays and a refresh go by without one surplus advert.
      await new Promise(resolve => setTimeout(resolve, 1500))
      expect(surplusAdverts).toEqual([])
      // Once an agent enables stealing, busy hears of it and advertises what waits on it.
      await thief.workStealing.enable()
      await until(() => surplusAdverts.length > 0)
    } finally {
      holding = false
      for (const release of holds.splice(0)) release()
    }
  })

  it('parses only well-formed adverts within bounds', () => {
    const good = encodeAdvert({ agentId: 'a', load: 0.5, surplus: ['t1', 't1', 't2'] })
    expect(parseAdvert(good)).toEqual({ agentId: 'a', load: 0.5, surplus: ['t1', 't2'] })
    const bad = [
      'null',
      '[]',
      '{"agentId":"","load":0,"surplus":[]}',
      '{"agentId":"a","load":null,"surplus":[]}',
      '{"agentId":"a","load":1e999,"surplus":[]}',
      '{"agentId":"a","load":0,"surplus":[""]}',
      '{"agentId":"a","load":0,"surplus":[1]}',
      `{"agentId":"a","load":0,"surplus":${JSON.stringify(Array.from({ length: 300 }, (_, i) => `t${i}`))}}`,
      `{"agentId":"a","load":0,"surplus":[],"pad":"${'x'.repeat(70_000)}"}`,
    ]
    for (const text of bad) expect(parseAdvert(encoder.encode(text)), text.slice(0, 60)).toBeUndefined()
    expect(parseAdvert(new Uint8Array([0xc3, 0x28]))).toBeUndefined()
    expect(parseAdvert('{"agentId":"a","load":0,"surplus":[]}')).toBeUndefined()
  })
})
