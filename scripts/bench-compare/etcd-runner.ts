/**
 * A child process holding an etcd3 client: runs the key-value workloads against etcd where conclave's run
 * inside an agent process, so that both sides measure from a process of their own, the same way.
 * Started by the load generator with `{ endpoints, callTimeoutMs? }` as its argument.
 */

import { serveBenchRequests } from './child.ts'
import { EtcdDriver } from './etcd-driver.ts'
import type { BenchRequest } from './protocol.ts'
import { runWorkload } from './workloads.ts'

const { endpoints, callTimeoutMs } = JSON.parse(process.argv[2] ?? '{}') as {
  endpoints: string[]
  callTimeoutMs?: number
}
const driver = new EtcdDriver(endpoints, callTimeoutMs)

async function serve(request: BenchRequest): Promise<unknown> {
  if (request.kind !== 'workload') throw new Error(`the etcd runner does not serve ${request.kind}`)
  if (request.spec.type !== 'writeGaps') return runWorkload(driver, request.spec)
  // A failover run gets a client of its own: the shared one may still be backing off from the member
  // killed in the previous run, which is not what a client meeting its first failover sees.
  const fresh = new EtcdDriver(endpoints, callTimeoutMs)
  try {
    await fresh.put('failover/warm', 'x')
    return await runWorkload(fresh, request.spec)
  } finally {
    await fresh.close()
  }
}

serveBenchRequests(serve, () => driver.close())
