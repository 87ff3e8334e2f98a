import { AbortError } from '../../errors.ts'
import type { Scheduler } from '../../time/scheduler.ts'

export type LeaderListener = (leader: string, previous: string, term: number) => void

/** The Raft leader as this agent last saw it, with change notifications. */
export class LeaderTracker {
  leader = ''
  term = 0
  private readonly listeners = new Set<LeaderListener>()
  private readonly scheduler: Scheduler

  constructor(scheduler: Scheduler) {
    this.scheduler = scheduler
  }

  update(leader: string, term: number): void {
    this.term = term
    if (leader === this.leader) return
    const previous = this.leader
    this.leader = leader
    for (const listener of this.listeners) listener(leader, previous, term)
  }

  onChange(listener: LeaderListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Resolves at the next leader change or after `ms`; rejects with AbortError on abort. */
  waitChange(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new AbortError())
      const done = (): void => {
        cancel()
        unsubscribe()
        signal?.removeEventListener('abort', onAbort)
      }
      const onAbort = (): void => {
        done()
        reject(new AbortError())
      }
      const cancel = this.scheduler.after(
        ms,
        () => {
          done()
          resolve()
        },
        { keepAlive: true },
      )
      const unsubscribe = this.onChange(() => {
        done()
        resolve()
      })
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}
