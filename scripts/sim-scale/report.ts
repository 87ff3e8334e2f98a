/** The human-readable table of a series of scale runs (`main.ts`). */

import type { ScaleReport } from './scale-run.ts'

function cells(values: (string | number)[], widths: number[]): string {
  return values.map((value, i) => String(value).padStart(widths[i])).join('  ')
}

function ms(value: number | null): string {
  return value === null ? 'never' : `${(value / 1000).toFixed(1)} s`
}

export function formatTable(reports: readonly ScaleReport[]): string {
  const lines: string[] = []
  const header = [
    'agents',
    'leader msg/s',
    'raft',
    'keepal.',
    'feed',
    'fwd',
    'swim',
    'leader KB/s',
    'member msg/s',
    'ka',
    'feed',
    'swim',
    'max',
    'member KB/s',
  ]
  const widths = header.map(h => Math.max(h.length, 7))
  const windows = [
    ['idle', 'Idle window (first 20 % of the measured window), per virtual second, messages in + out:'],
    ['crashes', 'Crash window (20-70 %: member, follower and leader crashes and restarts, no partition):'],
    ['all', 'Whole measured window (with the crashes and the partition):'],
  ] as const
  for (const [name, title] of windows) {
    lines.push(title)
    lines.push(cells(header, widths))
    for (const r of reports) {
      const l = r.leader[name]
      const m = r.perMember[name]
      lines.push(
        cells(
          [
            r.agents,
            l.total.messages,
            l.raft.messages,
            l.keepAlive.messages,
            l.feed.messages,
            l.forward.messages,
            l.swim.messages,
            (l.total.bytes / 1024).toFixed(1),
            m.total.messages,
            m.keepAlive.messages,
            m.feed.messages,
            m.swim.messages,
            name === 'idle' ? r.perMember.idleMax : name === 'all' ? r.perMember.allMax : '-',
            (m.total.bytes / 1024).toFixed(2),
          ],
          widths,
        ),
      )
    }
    lines.push('')
  }
  const dHeader = [
    'agents',
    'bound',
    'member',
    'follower',
    'leader',
    'false pos.',
    'excused',
    'false susp.',
    'ka expired',
    'sessions',
    'warm-up',
    'events',
    'wall',
    'cpu',
  ]
  const dWidths = dHeader.map(h => Math.max(h.length, 8))
  lines.push(
    'Detection (slowest crash of each kind: every surviving view marks it dead), false positives, sessions:',
  )
  lines.push(cells(dHeader, dWidths))
  for (const r of reports) {
    const slowest = (kind: string) => {
      const of = r.detections.filter(d => d.kind === kind)
      if (of.length === 0) return '-'
      if (of.some(d => d.allDeadMs === null)) return 'never'
      return ms(Math.max(...of.map(d => d.allDeadMs ?? 0)))
    }
    lines.push(
      cells(
        [
          r.agents,
          ms(r.boundMs),
          slowest('member'),
          slowest('follower'),
          slowest('leader'),
          r.falsePositives.counted,
          r.falsePositives.excused,
          r.falsePositives.falseSuspicions,
          r.keepAlive.liveSessionsExpired,
          `${r.keepAlive.membersWithSession}/${r.keepAlive.membersUp}`,
          r.swim.publishesPerSecond,
          ms(r.warmupMs),
          r.events,
          `${(r.wallMs / 1000).toFixed(1)} s`,
          `${(r.cpuMs / 1000).toFixed(1)} s`,
        ],
        dWidths,
      ),
    )
  }
  return lines.join('\n')
}
