/**
 * The real-time test files share one worker (vitest.config.ts), so a child process a file leaves running
 * (an agent, a CLI, a worker command) would go on using CPU, ports and disk under every later file and make
 * their timings lie. After each file: every child it spawned must have exited. A straggler gets a grace
 * period (stop hooks may still be reaping), then is killed and the file fails, naming it.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { afterAll } from 'vitest'

const GRACE_MS = 10_000

/** Live children of this process (Linux /proc), as `pid command`; zombies are not counted. */
function children(): string[] {
  const found: string[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[1]) !== process.pid || fields[0] === 'Z') continue
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()
      found.push(`${entry} ${command.slice(0, 160)}`)
    } catch {
      // Exited while being read.
    }
  }
  return found
}

afterAll(async () => {
  if (process.platform !== 'linux') return
  const end = Date.now() + GRACE_MS
  let left = children()
  while (left.length > 0 && Date.now() < end) {
    await new Promise(resolve => setTimeout(resolve, 100))
    left = children()
  }
  if (left.length === 0) return
  for (const line of left) {
    try {
      process.kill(Number(line.split(' ')[0]), 'SIGKILL')
    } catch {}
  }
  throw new Error(`child processes still running after the file's tests (killed now):\n${left.join('\n')}`)
}, GRACE_MS + 5_000)
