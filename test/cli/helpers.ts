import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The `conclave` command as users run it. */
export const BIN = fileURLToPath(new URL('../../bin/conclave.js', import.meta.url))

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
  ms: number
}

function cleanEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base = { ...process.env }
  delete base.CONCLAVE_PEER
  return { ...base, ...env }
}

/** Runs `conclave ...args` to the end. */
export function cli(args: string[], env?: Record<string, string>): Promise<CliResult> {
  const started = performance.now()
  const child = spawn(process.execPath, [BIN, ...args], { env: cleanEnv(env) })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', chunk => {
    stdout += chunk
  })
  child.stderr.on('data', chunk => {
    stderr += chunk
  })
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', code => resolve({ code, stdout, stderr, ms: performance.now() - started }))
  })
}

/** A `conclave` process left running, read line by line. */
export class RunningCli {
  readonly child: ChildProcessWithoutNullStreams
  readonly lines: string[] = []
  stderr = ''
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  private buffer = ''
  private waiters: (() => void)[] = []

  constructor(args: string[], env?: Record<string, string>) {
    this.child = spawn(process.execPath, [BIN, ...args], { env: cleanEnv(env) })
    this.child.stdout.on('data', chunk => {
      this.buffer += chunk
      const parts = this.buffer.split('\n')
      this.buffer = parts.pop() ?? ''
      this.lines.push(...parts)
      for (const wake of this.waiters.splice(0)) wake()
    })
    this.child.stderr.on('data', chunk => {
      this.stderr += chunk
    })
    this.exited = new Promise(resolve => {
      this.child.on('close', (code, signal) => {
        for (const wake of this.waiters.splice(0)) wake()
        resolve({ code, signal })
      })
    })
  }

  /** The first line (from `from`) matching `pattern`; fails after `ms` or if the process ends first. */
  async line(pattern: RegExp, ms = 20_000, from = 0): Promise<string> {
    const end = Date.now() + ms
    for (;;) {
      const found = this.lines.slice(from).find(line => pattern.test(line))
      if (found !== undefined) return found
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `exited before printing ${pattern}; stdout ${this.lines.join('\n')}; stderr ${this.stderr}`,
        )
      }
      if (Date.now() > end) throw new Error(`no line ${pattern} in time; got ${this.lines.join('\n')}`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, Math.max(0, end - Date.now()))
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
  }
}

export async function until(check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}
