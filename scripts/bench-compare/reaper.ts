/**
 * Servers the comparison starts (etcd, redis-server) are not Node children with an IPC channel: nothing
 * stops them if the load generator dies. This kills those still running when it exits, normally or on
 * SIGINT/SIGTERM.
 */
import type { ChildProcess } from 'node:child_process'

const running = new Set<ChildProcess>()
let installed = false

/** Kill `child` with SIGKILL if it is still running when this process exits. */
export function reapOnExit(child: ChildProcess): void {
  if (!installed) {
    installed = true
    process.once('exit', () => {
      for (const child of running) child.kill('SIGKILL')
    })
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))
  }
  running.add(child)
  child.once('exit', () => running.delete(child))
}
