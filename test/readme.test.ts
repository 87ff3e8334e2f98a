import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)

/** The README's embedding example must run exactly as printed (only the import is pointed at src/). */
describe('README', () => {
  it('runs the embedding example as printed', async () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    const match = /## Embedding an agent\s+```ts\n([\s\S]*?)```/.exec(readme)
    expect(match).not.toBeNull()
    const example = match![1]
    expect(example.split('\n').filter(line => line.trim() !== '').length).toBeLessThanOrEqual(20)
    const source = new URL('../src/index.ts', import.meta.url).pathname
    const dir = mkdtempSync(join(tmpdir(), 'conclave-readme-'))
    try {
      const file = join(dir, 'example.ts')
      writeFileSync(file, example.replace("from 'conclave'", `from '${source}'`))
      const { stdout } = await run(process.execPath, [file], { cwd: dir, timeout: 30_000 })
      expect(stdout).toContain('committed at revision')
      expect(stdout).toContain("{ name: 'llama', version: 3 }")
      expect(stdout).toMatch(/holding the lock with fencing token \d+n/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
