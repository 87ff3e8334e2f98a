/**
 * A joining agent's dial to a bootstrap member lasts the whole join (`BootstrapDials`), on a virtual clock:
 * a handshake slower than one request's wait is not cut short and begun again for the next request.
 */
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { BootstrapDials, type Dialer } from '../../src/agent/cluster/bootstrap-dials.ts'
import { Joining } from '../../src/agent/cluster/join.ts'
import { VirtualScheduler } from '../../src/time/virtual-scheduler.ts'

const PEER = peerIdFromString('12D3KooWSjMfchYCP5QKQFqoRAvq9519Hk5b9cEhgU7DRF2o6tip')

/** A dialer whose handshakes take `handshakeMs` of virtual time, or fail when `refuse` is set. */
function slowDialer(scheduler: VirtualScheduler, handshakeMs: number) {
  const dials: { peer: PeerId; signal?: AbortSignal; settled: boolean }[] = []
  let refuse = false
  const dialer: Dialer = {
    openConnection(peer, options) {
      const dial = { peer, signal: options?.signal, settled: false }
      dials.push(dial)
      return new Promise((resolve, reject) => {
        if (refuse) {
          dial.settled = true
          reject(new Error('connection refused'))
          return
        }
        const cancel = scheduler.after(handshakeMs, () => {
          dial.settled = true
          resolve(undefined)
        })
        options?.signal?.addEventListener('abort', () => {
          cancel()
          dial.settled = true
          reject(new Error('aborted'))
        })
      })
    },
  }
  return {
    dialer,
    dials,
    refuse: (value: boolean) => {
      refuse = value
    },
  }
}

/** Lets promise callbacks run between virtual-time steps. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve()
}

async function waitConnected(
  scheduler: VirtualScheduler,
  dials: BootstrapDials,
  waitMs: number,
): Promise<number> {
  const start = scheduler.now()
  let done = false
  const waiting = dials.connected(PEER, waitMs).then(() => {
    done = true
  })
  while (!done) {
    await settle()
    if (done) break
    scheduler.runNext()
  }
  await waiting
  return scheduler.now() - start
}

describe('bootstrap dials', () => {
  it('one dial serves every request of the join however long its handshake takes', async () => {
    const scheduler = new VirtualScheduler()
    const { dialer, dials: made } = slowDialer(scheduler, 12_000)
    const dials = new BootstrapDials(dialer, scheduler, 120_000, [])
    // Three requests give up waiting after 5 s each; the handshake goes on through all of them.
    expect(await waitConnected(scheduler, dials, 5_000)).toBe(5_000)
    expect(await waitConnected(scheduler, dials, 5_000)).toBe(5_000)
    expect(await waitConnected(scheduler, dials, 5_000)).toBe(2_000)
    expect(made).toHaveLength(1)
    expect(made[0].signal?.aborted).toBe(false)
    // Connected: the next request does not wait.
    expect(await waitConnected(scheduler, dials, 5_000)).toBe(0)
    dials.stop()
  })

  it('dials again after a failure, and stops at the deadline or on stop()', async () => {
    const scheduler = new VirtualScheduler()
    const { dialer, dials: made, refuse } = slowDialer(scheduler, 1_000)
    refuse(true)
    const dials = new BootstrapDials(dialer, scheduler, 30_000, [])
    await waitConnected(scheduler, dials, 5_000)
    refuse(false)
    expect(await waitConnected(scheduler, dials, 5_000)).toBe(1_000)
    expect(made).toHaveLength(2)

    const abandoned = slowDialer(scheduler, 60_000)
    const late = new BootstrapDials(abandoned.dialer, scheduler, scheduler.now() + 30_000, [])
    await waitConnected(scheduler, late, 5_000)
    scheduler.advance(25_000)
    await settle()
    expect(abandoned.dials[0].signal?.aborted).toBe(true)

    const stopped = slowDialer(scheduler, 60_000)
    const early = new BootstrapDials(stopped.dialer, scheduler, scheduler.now() + 30_000, [])
    await waitConnected(scheduler, early, 1_000)
    early.stop()
    expect(stopped.dials[0].signal?.aborted).toBe(true)
  })

  it('ends with the join: its signal aborts the dial', async () => {
    const scheduler = new VirtualScheduler()
    const { dialer, dials: made } = slowDialer(scheduler, 60_000)
    const join = new AbortController()
    const dials = new BootstrapDials(dialer, scheduler, 120_000, [join.signal])
    await waitConnected(scheduler, dials, 1_000)
    join.abort()
    expect(made[0].signal?.aborted).toBe(true)
  })
})

describe("a join's requests and its bootstrap dial", () => {
  /**
   * `Joining.askToJoin` against one bootstrap member whose handshake takes 25 s (a busy founder): the join
   * request goes out once the dial connected, not while it is under way: a request then would dial on its
   * own, under its short deadline, and cut the shared handshake short (bench:scale, 50 agents: 20 never got in).
   */
  it('sends no request while the handshake is under way', async () => {
    const scheduler = new VirtualScheduler()
    const { dialer, dials: made } = slowDialer(scheduler, 25_000)
    const requests: number[] = []
    const noop = (): void => {}
    const joining = new Joining({
      selfId: 'joiner',
      timing: { operationTimeoutMs: 10_000 },
      components: { connectionManager: dialer },
      directory: { multiaddrs: () => [] },
      admin: async () => {
        requests.push(scheduler.now())
        return { clusterId: 'c', role: 'member', replicas: [] }
      },
      meta: () => ({ setClusterId: noop }),
      authorization: { identityRefusal: () => undefined },
      closed: new AbortController().signal,
      scheduler,
      random: () => 0.5,
      log: Object.assign(noop, { error: noop, trace: noop }),
    } as never)
    const asked = (
      joining as unknown as {
        askToJoin(peers: { peerId: PeerId }[], clusterId: undefined, deadline: number): Promise<unknown>
      }
    ).askToJoin([{ peerId: PEER }], undefined, 120_000)
    let answered = false
    void asked.then(() => {
      answered = true
    })
    while (!answered && scheduler.now() < 120_000) {
      await settle()
      if (answered) break
      scheduler.runNext()
    }
    expect(await asked).toMatchObject({ role: 'member' })
    // One request, once the one handshake finished (before: one at 10 s, the request's wait, mid-handshake).
    expect(requests).toEqual([25_000])
    expect(made).toHaveLength(1)
  })
})
