import { describe, expect, it } from 'vitest'
import { abortable, withTimeout } from '../../../src/agent/node/abort.ts'
import { ClosedError } from '../../../src/errors.ts'
import { VirtualScheduler } from '../../../src/time/index.ts'

/** Rejections nobody handled while `run` and a few turns after it ran (they would end an agent's process). */
async function unhandledDuring(run: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = []
  const onUnhandled = (reason: unknown): void => {
    seen.push(reason)
  }
  process.on('unhandledRejection', onUnhandled)
  try {
    await run()
    for (let i = 0; i < 3; i++) await new Promise(resolve => setImmediate(resolve))
  } finally {
    process.off('unhandledRejection', onUnhandled)
  }
  return seen
}

describe('abortable and withTimeout after the agent stopped', () => {
  const stopped = (): AbortSignal => {
    const controller = new AbortController()
    controller.abort()
    return controller.signal
  }

  it('abortable rejects with ClosedError and leaves no rejection of the inner call unhandled', async () => {
    const seen = await unhandledDuring(async () => {
      const inner = Promise.reject(new Error('the runner stopped too'))
      await expect(abortable(inner, { closed: stopped() })).rejects.toBeInstanceOf(ClosedError)
    })
    expect(seen).toEqual([])
  })

  it('withTimeout does the same', async () => {
    const seen = await unhandledDuring(async () => {
      const inner = Promise.reject(new Error('the runner stopped too'))
      const call = withTimeout(
        inner,
        1_000,
        () => new Error('timeout'),
        { closed: stopped() },
        new VirtualScheduler(),
      )
      await expect(call).rejects.toBeInstanceOf(ClosedError)
    })
    expect(seen).toEqual([])
  })
})
