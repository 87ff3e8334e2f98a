import { execFile } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const INDEX = fileURLToPath(new URL('../../src/index.ts', import.meta.url))

/**
 * What a fresh process loads with the library alone: Node's bundled undici (pulled in by an ESM import of
 * `node:http`) and the Prometheus packages cost every agent process memory, and only an agent serving a
 * dashboard or metrics needs them.
 */
const PROBE = `
import { registerHooks } from 'node:module'
const urls = []
registerHooks({ load(url, context, next) { urls.push(url); return next(url, context) } })
await import(${JSON.stringify(INDEX)})
const prometheus = urls.filter(url => /prom-client|prometheus-metrics/.test(url)).length
const undici = process.moduleLoadList.some(name => name.includes('undici'))
console.log(JSON.stringify({ prometheus, undici, modules: urls.length }))
`

async function probe(): Promise<{ prometheus: number; undici: boolean; modules: number }> {
  // The agent processes' compile cache (`scripts/lib/hosts.ts`): a warm one saves seconds of type stripping.
  const env = { ...process.env, NODE_COMPILE_CACHE: join(tmpdir(), 'conclave-agent-compile-cache') }
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', PROBE], {
    env,
  })
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '')
}

describe('the library, imported', () => {
  it('loads neither undici nor the Prometheus packages until a server or metrics are asked for', async () => {
    const loaded = await probe()
    expect(loaded.modules).toBeGreaterThan(100)
    expect(loaded.undici).toBe(false)
    expect(loaded.prometheus).toBe(0)
  })
})
