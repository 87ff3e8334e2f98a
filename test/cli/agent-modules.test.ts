import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url))

/**
 * Code an agent runs only when asked for: the dashboard (`--http`), the metrics (`--metrics`), the recovery
 * of a lost quorum (`--force-new-cluster`). Every module a process loads costs it memory for its whole life
 * and CPU at its start, and every agent of a cluster of hundreds is a process.
 */
const ON_USE_ONLY = [
  'src/http/server.ts',
  'src/http/model.ts',
  'src/http/assets.ts',
  'src/metrics/conclave-metrics.ts',
  'src/metrics/prometheus.ts',
  'src/backup/force-new-cluster.ts',
]

describe('conclave agent, from the sources', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conclave-agent-modules-'))
  const hook = join(dir, 'hook.mjs')
  const list = join(dir, 'loaded.json')
  // Every module the agent process loads, written when it exits (it is the same process after its re-exec).
  writeFileSync(
    hook,
    `import { registerHooks } from 'node:module'
import { writeFileSync } from 'node:fs'
const urls = []
registerHooks({ load(url, context, next) { urls.push(url); return next(url, context) } })
process.on('exit', () => writeFileSync(${JSON.stringify(list)}, JSON.stringify({ urls, builtins: process.moduleLoadList })))
`,
  )
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('loads the dashboard, metrics and recovery code only when asked for', async () => {
    // The sources, whatever bin/conclave.js would pick (a bundle): the test is about what they load.
    const child = spawn(process.execPath, [`--import=${hook}`, MAIN, 'agent', '--voters', '1'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const exited = new Promise<number | null>(resolve => child.on('close', resolve))
    let stdout = ''
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', chunk => {
        stdout += chunk
        if (stdout.includes('member of the cluster')) resolve()
      })
      child.on('close', () => reject(new Error(`the agent exited before joining: ${stdout}`)))
    })
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    const { urls, builtins } = JSON.parse(readFileSync(list, 'utf8')) as {
      urls: string[]
      builtins: string[]
    }
    const ours = urls.filter(url => url.includes('/src/')).map(url => url.slice(url.lastIndexOf('/src/') + 1))
    expect(ours).toContain('src/agent/create-agent.ts')
    expect(ours.filter(path => ON_USE_ONLY.includes(path))).toEqual([])
    expect(urls.filter(url => /prom-client|prometheus-metrics/.test(url))).toEqual([])
    expect(builtins.filter(name => name.includes('undici'))).toEqual([])
  })
})
