/**
 * The scale simulation (`npm run sim:scale`) at N = 30: 5 voters, 2 standbys and 23 members built from the
 * real parts, with member and replica crashes and a partition. Its checks pass on the real code, and the
 * keep-alive check fires when members stop sending keep-alives (the leader's lessor expires their sessions);
 * the member write workload's checker passes, and fires on a broken record.
 */

import { describe, expect, it } from 'vitest'
import { runScale } from '../../scripts/sim-scale/scale-run.ts'

const base = { agents: 30, seed: 1, seconds: 30, loss: 0.01, meshDegree: 6 }

describe('sim:scale', () => {
  it('30 agents through crashes and a partition: every check passes, every crash detected within the bound', async () => {
    const report = await runScale(base)
    expect(report.violations).toEqual([])
    expect(report.members).toBe(23)
    // One member, a follower and the leader crashed; every surviving view marked each dead in time.
    expect(report.detections.map(d => d.kind).sort()).toEqual(['follower', 'leader', 'member'])
    for (const detection of report.detections) {
      expect(detection.allDeadMs).not.toBeNull()
      expect(detection.allDeadMs!).toBeLessThanOrEqual(report.boundMs)
    }
    expect(report.falsePositives.counted).toBe(0)
    expect(report.keepAlive.liveSessionsExpired).toBe(0)
    expect(report.keepAlive.membersWithSession).toBe(report.keepAlive.membersUp)
    // Keep-alives reach the leader (about one a member per ttl/4, request and answer) and members' traffic
    // stays small.
    expect(report.leader.idle.keepAlive.messages).toBeGreaterThan(23)
    expect(report.perMember.idle.total.messages).toBeLessThan(30)
  }, 60_000)

  it("the leader's machine lost (no connection reset): members find the new leader through the other replicas and keep their sessions", async () => {
    // Seed 5 lost a member's session before the keep-alive client asked the other replicas who leads.
    const report = await runScale({ ...base, seed: 5, silentCrashes: true })
    expect(report.violations).toEqual([])
    expect(report.keepAlive.liveSessionsExpired).toBe(0)
  }, 60_000)

  it("members write through the crashes and the partition: every answered put is durable and in the writer's own copy soon", async () => {
    // Seed 2 cuts off the standby feeding a writer: its copy stalled 3 s before the mirror left a silent feed.
    const report = await runScale({ ...base, seed: 2, memberWrites: true })
    expect(report.violations).toEqual([])
    expect(report.memberWrites?.answered).toBeGreaterThan(50)
    expect(report.memberWrites?.lost).toBe(0)
    expect(report.memberWrites?.ownCopyLate).toBe(0)
  }, 60_000)

  it('the member write checker fires on a put recorded with a value it did not write', async () => {
    const report = await runScale({ ...base, memberWrites: true, misrecordMemberWrite: true })
    expect(report.memberWrites?.lost).toBe(1)
    expect(report.violations.filter(v => v.check === 'member-write')).toHaveLength(1)
  }, 60_000)

  it('members that send no keep-alive lose their sessions: the keep-alive check fires', async () => {
    const report = await runScale({ ...base, skipKeepAlives: true })
    expect(report.keepAlive.liveSessionsExpired).toBeGreaterThan(0)
    expect(report.violations.some(v => v.check === 'keep-alive')).toBe(true)
  }, 60_000)
})
