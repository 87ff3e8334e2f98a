/**
 * The etcd side of the key-value workloads, through the `etcd3` npm client as a Node application would use
 * it: every endpoint given (the client balances over them), linearizable reads (its default), and locks
 * from its `lock()` helper.
 */
import { noop } from 'cockatiel'
import { Etcd3, EtcdLockFailedError, type Watcher } from 'etcd3'
import type { KvDriver } from './workloads.ts'

/** Deletions of one key seen so far, so a contender can wait for the holder to let go. */
interface DeleteWatch {
  watcher: Watcher
  deletes: number
  waiters: Set<() => void>
}

/** Upper bound on one wait for a deletion: covers a deletion that happened before the watch reported it. */
const RETRY_WAIT_MS = 100

export class EtcdDriver implements KvDriver {
  private readonly client: Etcd3
  private readonly watches = new Map<string, Promise<DeleteWatch>>()

  /**
   * `callTimeoutMs`: a deadline on every unary call (etcd3's `defaultCallOptions`); none by default, as in
   * etcd3. Without one, a write caught in a leader's crash waits out etcd's own request timeout (7 s with
   * the default election timeout) before it fails.
   */
  constructor(endpoints: string[], callTimeoutMs?: number) {
    this.client = new Etcd3({
      hosts: endpoints,
      ...(callTimeoutMs === undefined
        ? {}
        : {
            defaultCallOptions: context => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
            // Without this, three timed-out calls in a row open a host's circuit breaker for 5 s.
            faultHandling: { host: () => noop },
          }),
    })
  }

  async put(key: string, value: string): Promise<void> {
    await this.client.put(key).value(value)
  }

  async get(key: string): Promise<unknown> {
    return (await this.client.get(key).string()) ?? undefined
  }

  async txn(keys: [string, string], value: string): Promise<boolean> {
    const [a, b] = keys
    const response = await this.client
      .if(a, 'Version', '>', 0)
      .and(b, 'Version', '>', 0)
      .then(this.client.put(a).value(value), this.client.put(b).value(value))
      .commit()
    return response.succeeded
  }

  async list(prefix: string): Promise<number> {
    return Object.keys(await this.client.getAll().prefix(prefix).strings()).length
  }

  /**
   * etcd3's `lock()` fails at once when the key is held (`EtcdLockFailedError`), so a waiter retries: it
   * waits for the holder's key to be deleted (a watch shared by the contenders in this process), then tries
   * again. Each attempt is etcd3's: grant a lease, create the key under it if absent; release revokes it.
   */
  async lock(key: string, ttlMs: number): Promise<() => Promise<void>> {
    const watch = await this.deleteWatch(key)
    for (;;) {
      const seen = watch.deletes
      const lock = this.client.lock(key).ttl(Math.max(1, Math.ceil(ttlMs / 1000)))
      try {
        await lock.acquire()
        return async () => {
          await lock.release()
        }
      } catch (err) {
        if (!(err instanceof EtcdLockFailedError)) throw err
        if (watch.deletes === seen) await nextDelete(watch)
      }
    }
  }

  async close(): Promise<void> {
    for (const watch of this.watches.values()) await (await watch).watcher.cancel()
    this.client.close()
  }

  private deleteWatch(key: string): Promise<DeleteWatch> {
    let watch = this.watches.get(key)
    if (watch === undefined) {
      watch = this.client
        .watch()
        .key(key)
        .only('delete')
        .create()
        .then(watcher => {
          const state: DeleteWatch = { watcher, deletes: 0, waiters: new Set() }
          watcher.on('delete', () => {
            state.deletes++
            for (const wake of state.waiters) wake()
            state.waiters.clear()
          })
          return state
        })
      this.watches.set(key, watch)
    }
    return watch
  }
}

function nextDelete(watch: DeleteWatch): Promise<void> {
  return new Promise(resolve => {
    const wake = (): void => {
      clearTimeout(timer)
      watch.waiters.delete(wake)
      resolve()
    }
    const timer = setTimeout(wake, RETRY_WAIT_MS)
    watch.waiters.add(wake)
  })
}
