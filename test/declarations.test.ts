import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { createAgent } from '../src/index.ts'

const run = promisify(execFile)
const root = new URL('..', import.meta.url).pathname

/**
 * Names of the test-only switches, Raft's (`src/raft/core-options.ts`) and the shell's (`src/shell-bugs.ts`):
 * none may be reachable from the package (the shell's are stripped as `@internal`).
 */
const BUG_SWITCHES =
  /\b(bugs|RaftBugs|RaftCoreOptions|voteIgnoresLog|commitPreviousTerm|staleRead|readAckAnyQuorum|peerCommitAnyTerm|ShellBugs?|lease-inline-expiry|no-fail-stop|resign-any-candidacy|session-window|ephemeral-outlives-session|txn-first-compare-only|semaphore-extra-permit|cancel-keeps-attempt)\b/

/** Every declaration file reachable from `entry` through relative imports and re-exports. */
function reachable(entry: string): Map<string, string> {
  const seen = new Map<string, string>()
  const pending = [entry]
  while (pending.length > 0) {
    const file = pending.pop()!
    if (seen.has(file)) continue
    const text = readFileSync(file, 'utf8')
    seen.set(file, text)
    for (const match of text.matchAll(/(?:from|import\()\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const target = resolve(dirname(file), match[1]).replace(/\.(ts|js)$/, '.d.ts')
      if (existsSync(target)) pending.push(target)
    }
  }
  return seen
}

describe('the built type declarations', () => {
  // A full declaration build of src: tens of seconds on a loaded machine.
  it('expose no Raft bug switch from the package root', { timeout: 180_000 }, async () => {
    const outDir = mkdtempSync(join(tmpdir(), 'conclave-dts-'))
    try {
      await run(
        process.execPath,
        [
          join(root, 'node_modules/typescript/bin/tsc'),
          ...['-p', join(root, 'tsconfig.build.json'), '--emitDeclarationOnly', '--outDir', outDir],
        ],
        { cwd: root, timeout: 120_000 },
      )
      const files = reachable(join(outDir, 'src/index.d.ts'))
      // The walk follows the public surface down to the Raft options an agent takes.
      expect([...files.keys()].some(file => file.endsWith('src/raft/types.d.ts'))).toBe(true)
      expect([...files.keys()].some(file => file.endsWith('src/agent/options.d.ts'))).toBe(true)
      const exposed = [...files].filter(([, text]) => BUG_SWITCHES.test(text)).map(([file]) => file)
      expect(exposed).toEqual([])
    } finally {
      rmSync(outDir, { recursive: true, force: true })
    }
  })

  it('refuse a bug switch in an agent’s Raft options (checked by the typecheck of this file)', () => {
    // Never called: the point is the type error the directive below requires.
    const build = () =>
      createAgent({
        // @ts-expect-error bug switches are not part of the public RaftOptions
        raft: { bugs: { staleRead: true } },
      })
    expect(typeof build).toBe('function')
  })
})
