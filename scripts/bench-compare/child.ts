/**
 * Child processes of the load generator that hold a system's client (the etcd runner, the BullMQ workers):
 * the parent's handle, and the child's loop answering bench requests over Node's IPC channel, as the agent
 * host does for conclave.
 */
import { type ChildProcess, fork } from 'node:child_process'
import type { BenchRequest, BenchTarget } from './protocol.ts'

interface Reply {
  id: number
  ok: boolean
  value?: unknown
  error?: { name: string; message: string }
}

export class BenchChild implements BenchTarget {
  private readonly child: ChildProcess
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(err: Error): void }>()
  private nextId = 1
  private exited = false
  private readonly exit: Promise<void>

  private constructor(child: ChildProcess) {
    this.child = child
    this.exit = new Promise(resolve => {
      child.once('exit', () => {
        this.exited = true
        for (const pending of this.pending.values()) pending.reject(new Error('bench child process exited'))
        this.pending.clear()
        resolve()
      })
    })
    child.on('message', message => {
      const reply = message as Reply
      const pending = this.pending.get(reply.id)
      if (pending === undefined) return
      this.pending.delete(reply.id)
      if (reply.ok) pending.resolve(reply.value)
      else {
        const err = new Error(reply.error?.message ?? 'unknown error')
        err.name = reply.error?.name ?? 'Error'
        pending.reject(err)
      }
    })
  }

  /** Forks `script` (a .ts file run by this Node) with `options` as its argument; waits until it serves. */
  static async spawn(script: string, options: unknown, stderr: 'inherit' | 'ignore'): Promise<BenchChild> {
    const child = fork(script, [JSON.stringify(options)], {
      execPath: process.execPath,
      execArgv: [],
      stdio: ['ignore', 'ignore', stderr, 'ipc'],
    })
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve())
      child.once('exit', code => reject(new Error(`${script} exited with ${code} before it was ready`)))
    })
    return new BenchChild(child)
  }

  bench(request: BenchRequest): Promise<unknown> {
    if (this.exited) return Promise.reject(new Error('bench child process exited'))
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.child.send({ id, request })
    })
  }

  /** Disconnects (the child then closes its clients and exits), or kills it after a few seconds. */
  async stop(): Promise<void> {
    if (this.exited) return
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000)
    this.child.disconnect()
    await this.exit
    clearTimeout(timer)
  }
}

/** The child's side: answers each request with `handler`, and runs `close` when the parent disconnects. */
export function serveBenchRequests(
  handler: (request: BenchRequest) => Promise<unknown>,
  close: () => Promise<void>,
): void {
  process.on('message', message => {
    const { id, request } = message as { id: number; request: BenchRequest }
    handler(request).then(
      value => process.send?.({ id, ok: true, value }),
      (err: Error) => process.send?.({ id, ok: false, error: { name: err.name, message: err.message } }),
    )
  })
  process.on('disconnect', () => {
    close().finally(() => process.exit(0))
  })
  process.send?.({ type: 'ready' })
}
