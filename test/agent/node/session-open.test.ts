/**
 * Calls that find no session join one open attempt. That attempt runs under the deadline of the call that
 * began it; a call that joined later with a later deadline must not fail when the earlier one runs out.
 */

import { describe, expect, it } from 'vitest'
import { SessionKeeper } from '../../../src/agent/node/session.ts'
import { resolveTiming } from '../../../src/agent/options.ts'
import { NoLeaderError } from '../../../src/errors.ts'
import type { CommandResult } from '../../../src/state/index.ts'
import { VirtualScheduler } from '../../../src/time/index.ts'

const settle = (): Promise<void> => new Promise(resolve => setImmediate(resolve))
const log = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

describe('SessionKeeper.open shared by several calls', () => {
  it('a call joining an open begun under an earlier deadline waits until its own deadline', async () => {
    const scheduler = new VirtualScheduler({ start: 1_000 })
    // No leader commits anything until the cluster heals at 1_300.
    const healsAt = 1_300
    const opens: number[] = []
    const session = new SessionKeeper(
      'a',
      resolveTiming({ sessionTtlMs: 10_000 }),
      {
        submitRaw: (command, deadline) => {
          opens.push(scheduler.now())
          return new Promise<CommandResult>((resolve, reject) => {
            scheduler.after(Math.max(0, Math.min(deadline, healsAt) - scheduler.now()), () => {
              if (scheduler.now() >= healsAt && command.type === 'openSession') {
                resolve({ type: 'session', sessionId: command.sessionId, expiresAt: 0 })
              } else reject(new NoLeaderError('No leader committed the operation in time'))
            })
          })
        },
        keepAlive: async () => ({ status: 'renewed' }),
      },
      log as never,
      scheduler,
    )
    const early = session.open(1_100).then(
      () => 'opened',
      (err: Error) => err.name,
    )
    scheduler.advance(50)
    await settle()
    const late = session.open(2_000).then(
      () => 'opened',
      (err: Error) => err.name,
    )
    for (let i = 0; i < 10; i++) {
      scheduler.advance(50)
      await settle()
    }
    expect(await early).toBe('NoLeaderError')
    expect(await late).toBe('opened')
    expect(session.id).not.toBe('')
    // The late call tried again under its own deadline once the shared attempt ran out.
    expect(opens.length).toBe(2)
    expect(opens[1]).toBeGreaterThanOrEqual(1_100)
  })
})
