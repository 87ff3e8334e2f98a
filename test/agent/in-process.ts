import { afterEach } from 'vitest'
import type { Agent } from '../../src/index.ts'

/** Polls `check` every 10 ms until it holds; throws after `ms`. For in-process agents on the system clock. */
export async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

/**
 * Lists for the agents and workers a test file starts: after each test its workers are closed, then its agents
 * stopped.
 */
export function stoppedAfterEach<W extends { close(): Promise<void> }>(): { agents: Agent[]; workers: W[] } {
  const agents: Agent[] = []
  const workers: W[] = []
  afterEach(async () => {
    await Promise.all(workers.splice(0).map(worker => worker.close()))
    await Promise.all(agents.splice(0).map(agent => agent.stop()))
  })
  return { agents, workers }
}
