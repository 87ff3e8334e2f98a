/**
 * The leader proposes a repeat's slots in order, never a later one while an earlier one is in flight: a later
 * slot applied first leaves the earlier one `unchanged` (lost). Found by the simulator (seeds 4 and 124).
 */

import { describe, expect, it } from 'vitest'
import { type Duty, LeaderDuties } from '../../src/agent/cluster/leader-duties.ts'
import type { Command, CommandResult } from '../../src/state/index.ts'

const noop = (): void => {}
const log = Object.assign(noop, {
  error: noop,
  trace: noop,
  enabled: false,
}) as unknown as ConstructorParameters<typeof LeaderDuties>[1]

function occurrence(slot: number): Duty {
  return { id: `o:r:${slot}`, command: { type: 'createOccurrence', scheduleId: 'r', slot } }
}

describe('LeaderDuties and repeat slots', () => {
  it('holds a later slot back while an earlier one of the same repeat is in flight', async () => {
    const sent: Command[] = []
    const answers: ((result: CommandResult) => void)[] = []
    const duties = new LeaderDuties(
      {
        submitRaw: command => {
          sent.push(command)
          return new Promise(resolve => answers.push(resolve))
        },
        deadline: () => 1_000,
      },
      log,
    )
    duties.run([occurrence(100)])
    // The next round, with slot 100 still on its way: slot 200 waits (another repeat's would not).
    duties.run([
      occurrence(100),
      occurrence(200),
      { id: 'o:q:200', command: { type: 'createOccurrence', scheduleId: 'q', slot: 200 } },
    ])
    expect(sent.map(command => (command as { scheduleId: string; slot: number }).slot)).toEqual([100, 200])
    expect(sent.map(command => (command as { scheduleId: string }).scheduleId)).toEqual(['r', 'q'])
    for (const answer of answers) answer({ type: 'ok' })
    await new Promise(resolve => setImmediate(resolve))
    // Answered: the due slots go out together, in order.
    duties.run([occurrence(200), occurrence(300)])
    expect(sent.slice(2).map(command => (command as { slot: number }).slot)).toEqual([200, 300])
  })
})
