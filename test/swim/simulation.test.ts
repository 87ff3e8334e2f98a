import { describe, expect, it } from 'vitest'
import { documentedDetectionBound, median, memberlistBound } from '../../scripts/swim-sim/report.ts'
import { runSwimSimulation } from '../../scripts/swim-sim/simulation.ts'

describe('SWIM simulation', () => {
  it('replays exactly for a seed', () => {
    const options = { members: 25, loss: 0.1, periods: 200, seed: 7, crash: 2, slow: 1, leave: 1 }
    const first = runSwimSimulation(options)
    expect(runSwimSimulation(options)).toEqual(first)
    expect(runSwimSimulation({ ...options, seed: 8 })).not.toEqual(first)
  })

  it('has no false positives with 100 members at 10% loss over 10,000 protocol periods', () => {
    const started = performance.now()
    const report = runSwimSimulation({ members: 100, loss: 0.1, periods: 10_000, seed: 1 })
    const elapsed = performance.now() - started
    expect(report.falsePositives).toBe(0)
    // The detector was exercised: lost messages made live members suspect, and they refuted.
    expect(report.falseSuspicions).toBeGreaterThan(100)
    expect(report.finalView.deadOrMissing).toBe(0)
    console.log(
      `100 members, 10% loss, 10,000 periods: ${report.falseSuspicions} suspicions refuted, ` +
        `0 false positives, ${Math.round(elapsed)} ms`,
    )
  })

  for (const members of [25, 100]) {
    for (const loss of [0, 0.1]) {
      it(`detects crashes of ${members} members within the documented bound at ${loss * 100}% loss`, () => {
        const lasts: number[] = []
        for (const seed of [1, 2]) {
          const report = runSwimSimulation({ members, loss, periods: 300, seed, crash: 4 })
          expect(report.falsePositives).toBe(0)
          for (const crash of report.crashes) {
            expect(crash.undetectedBy).toBe(0)
            expect(crash.lastDetectionMs).not.toBeNull()
            expect(crash.lastDetectionMs!).toBeLessThanOrEqual(
              documentedDetectionBound(report.config, members),
            )
            lasts.push(crash.lastDetectionMs!)
          }
        }
        // Typically within a probe period of memberlist's nominal LAN figure (1 s + 4 × log10 n s).
        expect(median(lasts)!).toBeLessThanOrEqual(memberlistBound(members) + 1000)
      })
    }
  }

  it('never marks dead a slow member that pauses for less than the suspicion timeout', () => {
    // 100 members: the confirmed suspicion timeout is 8 s; members pause 5 s every 30 s.
    const paused = runSwimSimulation({
      members: 100,
      loss: 0.1,
      periods: 600,
      slow: 3,
      slowMode: 'pause',
      slowMs: 5000,
    })
    expect(paused.falsePositives).toBe(0)
    expect(paused.falseSuspicions).toBeGreaterThan(20)
    // Inbox lag of up to 2 s on every message: suspected again and again, refuted every time.
    const lagging = runSwimSimulation({
      members: 50,
      loss: 0.1,
      periods: 600,
      slow: 3,
      slowMode: 'lag',
      slowMs: 2000,
    })
    expect(lagging.falsePositives).toBe(0)
    expect(lagging.maxLocalHealth).toBeGreaterThan(0)
  })

  it('does mark dead a member paused for longer than the suspicion timeout (the check can fail)', () => {
    const report = runSwimSimulation({
      members: 50,
      periods: 200,
      slow: 1,
      slowMode: 'pause',
      slowMs: 20_000,
    })
    expect(report.falsePositives).toBeGreaterThan(0)
  })

  it('marks a graceful leave as left everywhere, not dead', () => {
    const report = runSwimSimulation({ members: 50, loss: 0.1, periods: 300, leave: 3 })
    expect(report.falsePositives).toBe(0)
    for (const leave of report.leaves) {
      expect(leave.markedDeadBy).toBe(0)
      expect(leave.markedLeftBy).toBe(50 - 3)
    }
  })

  it('keeps the fast preset free of false positives at 10% loss, and detects twice as fast', () => {
    const report = runSwimSimulation({ members: 100, loss: 0.1, periods: 2000, preset: 'fast', crash: 3 })
    expect(report.falsePositives).toBe(0)
    for (const crash of report.crashes) {
      expect(crash.undetectedBy).toBe(0)
      expect(crash.lastDetectionMs!).toBeLessThanOrEqual(documentedDetectionBound(report.config, 100))
    }
    expect(report.detection.lastMedianMs!).toBeLessThan(memberlistBound(100))
  })
})
