/** The comparison's results: one record per workload with both systems' figures and their ratio. */

/** Named figures of one system on one workload (ops/s, latencies in ms, counts). */
export type Figures = Record<string, number | number[] | string>

export type Outcome = { figures: Figures } | { skipped: string }

export interface Run {
  workload: 'put' | 'get' | 'lock' | 'failover' | 'tasks' | 'txn' | 'list' | 'flow'
  /** What ran, in words: 'put 100 B, 16 concurrent'. */
  label: string
  params: Record<string, number | string>
  /** The system conclave is compared with on this workload. */
  baseline: 'etcd' | 'bullmq'
  baselineResult: Outcome
  conclave: Outcome
  /** conclave ÷ baseline for each headline metric both have. */
  ratio: Record<string, number>
}

/** The headline metrics, in table order, with how the table names them. */
const METRICS: [key: string, name: string][] = [
  ['opsPerSecond', 'ops/s'],
  ['p50Ms', 'p50 ms'],
  ['p99Ms', 'p99 ms'],
  ['longestGapMs', 'longest write gap ms (median)'],
]

export function makeRun(
  workload: Run['workload'],
  label: string,
  params: Run['params'],
  baseline: Run['baseline'],
  baselineResult: Outcome,
  conclave: Outcome,
): Run {
  const ratio: Record<string, number> = {}
  if ('figures' in baselineResult && 'figures' in conclave) {
    for (const [key] of METRICS) {
      const theirs = baselineResult.figures[key]
      const ours = conclave.figures[key]
      if (typeof theirs === 'number' && typeof ours === 'number' && theirs > 0) {
        ratio[key] = Math.round((ours / theirs) * 100) / 100
      }
    }
  }
  return { workload, label, params, baseline, baselineResult, conclave, ratio }
}

const SYSTEM_NAMES = { etcd: 'etcd', bullmq: 'BullMQ' } as const

/** A Markdown table (readable in a terminal too): one row per workload and metric. */
export function table(runs: Run[]): string {
  const rows: string[][] = [['workload', 'metric', 'vs', 'etcd / BullMQ', 'conclave', 'conclave ÷ other']]
  for (const run of runs) {
    const metrics = METRICS.filter(
      ([key]) => figureOf(run.baselineResult, key) !== undefined || figureOf(run.conclave, key) !== undefined,
    )
    if (metrics.length === 0) metrics.push(METRICS[0])
    metrics.forEach(([key, name], i) => {
      rows.push([
        i === 0 ? run.label : '',
        name,
        i === 0 ? SYSTEM_NAMES[run.baseline] : '',
        cell(run.baselineResult, key),
        cell(run.conclave, key),
        run.ratio[key] === undefined ? '' : `${run.ratio[key].toFixed(2)}`,
      ])
    })
  }
  const widths = rows[0].map((_, column) => Math.max(...rows.map(row => row[column].length)))
  const line = (row: string[]): string =>
    `| ${row.map((text, column) => (column >= 3 ? text.padStart(widths[column]) : text.padEnd(widths[column]))).join(' | ')} |`
  const rule = `| ${widths.map((width, column) => (column >= 3 ? `${'-'.repeat(width - 1)}:` : '-'.repeat(width))).join(' | ')} |`
  return [line(rows[0]), rule, ...rows.slice(1).map(line)].join('\n')
}

function figureOf(outcome: Outcome, key: string): number | undefined {
  if (!('figures' in outcome)) return undefined
  const value = outcome.figures[key]
  return typeof value === 'number' ? value : undefined
}

function cell(outcome: Outcome, key: string): string {
  if (!('figures' in outcome)) return 'skipped'
  const value = figureOf(outcome, key)
  if (value === undefined) return ''
  if (key === 'opsPerSecond') return Math.round(value).toLocaleString('en-US')
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(2)
}
