/**
 * The probe period grows with the cluster within memberlist's LAN detection bound (`probePeriod`): probes are
 * most of an idle member's messages, and the bound the scale targets ask for is memberlist's.
 */
import { describe, expect, it } from 'vitest'
import { detectionBound } from '../../src/agent/cluster/swim-wire.ts'
import {
  memberlistLanBound,
  probePeriod,
  resolveConfig,
  SWIM_FAST_CONFIG,
  SWIM_LAN_CONFIG,
} from '../../src/swim/config.ts'
import { TestCluster } from './harness.ts'

describe('probe period', () => {
  it('grows with the cluster (fast timing) while the detection bound stays within memberlist LAN bound', () => {
    expect(probePeriod(SWIM_FAST_CONFIG, 3)).toBe(500)
    expect(probePeriod(SWIM_FAST_CONFIG, 10)).toBe(500)
    expect(probePeriod(SWIM_FAST_CONFIG, 20)).toBe(600)
    expect(probePeriod(SWIM_FAST_CONFIG, 50)).toBe(733)
    expect(probePeriod(SWIM_FAST_CONFIG, 100)).toBe(833)
    expect(probePeriod(SWIM_FAST_CONFIG, 1000)).toBe(1000)
    for (let n = 11; n <= 2000; n++) {
      expect(detectionBound(SWIM_FAST_CONFIG, n)).toBeLessThanOrEqual(memberlistLanBound(n))
      expect(probePeriod(SWIM_FAST_CONFIG, n)).toBeGreaterThanOrEqual(probePeriod(SWIM_FAST_CONFIG, n - 1))
    }
  })

  it('stays at probeInterval with LAN timing, or with maxProbeInterval at or below it', () => {
    for (const n of [3, 10, 50, 1000]) expect(probePeriod(SWIM_LAN_CONFIG, n)).toBe(1000)
    const fixed = resolveConfig({ ...SWIM_FAST_CONFIG, maxProbeInterval: 500 })
    expect(probePeriod(fixed, 100)).toBe(500)
    const slow = resolveConfig({ ...SWIM_FAST_CONFIG, probeInterval: 2000, probeTimeout: 500 })
    expect(probePeriod(slow, 100)).toBe(2000)
  })

  it('makes each member of 50 send about one ping per 733 ms at rest, not one per 500 ms', () => {
    const cluster = new TestCluster(SWIM_FAST_CONFIG)
    cluster.add('m0')
    for (let i = 1; i < 50; i++) cluster.add(`m${i}`, ['m0'])
    cluster.run(20_000)
    for (let i = 0; i < 50; i++) expect(cluster.core('m0').member(`m${i}`)?.status).toBe('alive')
    const start = cluster.now
    cluster.run(60_000)
    const pings = cluster.sends('ping', 'm7').filter(sent => sent.at >= start).length
    // 60 s / 733 ms = 82 probes (one ping each when answered); 120 with the 500 ms period.
    expect(pings).toBeGreaterThanOrEqual(78)
    expect(pings).toBeLessThanOrEqual(86)
  })
})
