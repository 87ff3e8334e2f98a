import { readFileSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { AGENT_MAX_SEMI_SPACE_MIB, agentHeapFlags } from '../../src/cli/agent-heap.ts'
import { RunningCli } from './helpers.ts'

const FLAG = `--max-semi-space-size=${AGENT_MAX_SEMI_SPACE_MIB}`

describe('the young generation of conclave agent', () => {
  it('is sized for the agent command only, unless the user sized it', () => {
    expect(agentHeapFlags(['agent', '--voters', '1'], [])).toEqual([FLAG])
    expect(agentHeapFlags(['agent'], ['--enable-source-maps'], '--no-warnings')).toEqual([FLAG])
    for (const other of [['status'], ['kv', 'get', 'a'], []])
      expect(agentHeapFlags(other, [])).toBeUndefined()
    expect(agentHeapFlags(['agent'], ['--max-semi-space-size=64'])).toBeUndefined()
    expect(agentHeapFlags(['agent'], ['--max_semi_space_size=64'])).toBeUndefined()
    expect(agentHeapFlags(['agent'], ['--semi-space-growth-factor=4'])).toBeUndefined()
    expect(agentHeapFlags(['agent'], [], '--max-old-space-size=512 --max-heap-size=1024')).toBeUndefined()
    expect(agentHeapFlags(['agent'], [], '--min-semi-space-size=16')).toBeUndefined()
  })

  let agent: RunningCli | undefined
  afterEach(async () => {
    agent?.child.kill('SIGKILL')
    await agent?.exited
  })

  it('is set in the running agent process, which keeps its pid', async () => {
    agent = new RunningCli(['agent', '--voters', '1'])
    await agent.line(/listening on \//)
    // The process the test started is the agent (replaced in place), started with the flag.
    const cmdline = readFileSync(`/proc/${agent.child.pid}/cmdline`, 'utf8').split('\0')
    expect(cmdline).toContain(FLAG)
    expect(cmdline.indexOf(FLAG)).toBeLessThan(cmdline.findIndex(arg => arg.endsWith('conclave.js')))
  })
})
