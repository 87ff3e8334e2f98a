/**
 * What `npm run simulate` shows while it runs: on a terminal, a live table of the agents redrawn in place
 * with the latest events under it; otherwise (or with `--plain`) one log line per event and a status line
 * every few seconds.
 */
import type { ClusterEvent } from '../chaos/events.ts'

export interface AgentRow {
  name: string
  /** leader, follower, nonvoter, joining; `-` when the agent does not answer. */
  role: string
  term: number | undefined
  /** As the harness made it (killed, paused, cut off) or as the leader's membership view says. */
  status: string
  load: number | undefined
  tasksDone: number | undefined
  locksHeld: number | undefined
  capabilities: string[]
}

export interface Frame {
  elapsedMs: number
  phase: string
  rows: AgentRow[]
  /** One line of running totals. */
  totals: string
}

export interface Reporter {
  /** A line of the harness: a phase or a fault begins, a measurement. */
  note(text: string, elapsedMs: number): void
  event(event: ClusterEvent, elapsedMs: number): void
  frame(frame: Frame): void
  /** Leaves the terminal as it found it (the last frame stays on screen). */
  close(): void
}

function clock(ms: number): string {
  return `${(ms / 1000).toFixed(1).padStart(5)} s`
}

function cell(value: number | undefined, digits = 0): string {
  return value === undefined ? '-' : value.toFixed(digits)
}

/** Redraws a table in place (ANSI cursor movement) with the last events below it. */
export class LiveReporter implements Reporter {
  private readonly title: string
  private readonly out: NodeJS.WriteStream
  private readonly recent: string[] = []
  private lastLines = 0
  private last: Frame = { elapsedMs: 0, phase: 'starting', rows: [], totals: '' }
  private static readonly EVENT_LINES = 12

  constructor(title: string, out: NodeJS.WriteStream = process.stdout) {
    this.title = title
    this.out = out
    this.out.write('\x1b[?25l')
  }

  note(text: string, elapsedMs: number): void {
    this.push(`${clock(elapsedMs)}  == ${text}`)
  }

  event(event: ClusterEvent, elapsedMs: number): void {
    this.push(`${clock(elapsedMs)}  ${marker(event.kind)} ${event.text}`)
  }

  frame(frame: Frame): void {
    this.last = frame
    this.draw()
  }

  close(): void {
    this.draw()
    this.out.write('\x1b[?25h')
  }

  private push(line: string): void {
    this.recent.push(line)
    if (this.recent.length > LiveReporter.EVENT_LINES) this.recent.shift()
    this.draw()
  }

  private draw(): void {
    const frame = this.last
    // Lines are cut to the terminal's width: a wrapped line would throw the redraw off by one.
    const columns = this.out.columns ?? 0
    const width = columns >= 20 ? columns : 200
    const lines = [
      `${this.title}    ${clock(frame.elapsedMs)}    ${frame.phase}`,
      '',
      `${'agent'.padEnd(10)}${'role'.padEnd(10)}${'term'.padStart(5)}  ${'status'.padEnd(12)}${'load'.padStart(5)}${'tasks'.padStart(7)}${'locks'.padStart(7)}  capabilities`,
      ...frame.rows.map(
        row =>
          `${row.name.padEnd(10)}${row.role.padEnd(10)}${cell(row.term).padStart(5)}  ${row.status.padEnd(12)}${cell(row.load, 2).padStart(5)}${cell(row.tasksDone).padStart(7)}${cell(row.locksHeld).padStart(7)}  ${row.capabilities.join(',')}`,
      ),
      '',
      frame.totals,
      '',
      ...this.recent,
    ].map(line => (line.length > width ? line.slice(0, width - 1) : line))
    // Up to the first line of the previous frame, clear to the end of the screen, draw again.
    const up = this.lastLines > 0 ? `\x1b[${this.lastLines}A\r\x1b[J` : ''
    this.out.write(`${up}${lines.join('\n')}\n`)
    this.lastLines = lines.length
  }
}

/** One line per event and per note, and the totals every `everyMs`. */
export class PlainReporter implements Reporter {
  private readonly write: (line: string) => void
  private readonly everyMs: number
  private lastStatus = Number.NEGATIVE_INFINITY

  constructor(write: (line: string) => void, everyMs = 5000) {
    this.write = write
    this.everyMs = everyMs
  }

  note(text: string, elapsedMs: number): void {
    this.write(`${clock(elapsedMs)}  == ${text}`)
  }

  event(event: ClusterEvent, elapsedMs: number): void {
    this.write(`${clock(elapsedMs)}  ${marker(event.kind)} ${event.text}`)
  }

  frame(frame: Frame): void {
    if (frame.elapsedMs - this.lastStatus < this.everyMs) return
    this.lastStatus = frame.elapsedMs
    const agents = frame.rows
      .map(
        row =>
          `${row.name}:${row.role === '-' ? row.status : row.role}${row.term === undefined ? '' : `/t${row.term}`}`,
      )
      .join(' ')
    this.write(`${clock(frame.elapsedMs)}  -- ${frame.totals} | ${agents}`)
  }

  close(): void {}
}

function marker(kind: ClusterEvent['kind']): string {
  switch (kind) {
    case 'leader':
      return '[leader]'
    case 'suspect':
      return '[suspect]'
    case 'dead':
      return '[dead]'
    case 'alive':
      return '[alive]'
    case 'steal':
      return '[steal]'
    case 'lockLost':
      return '[lock]'
    case 'harness':
      return '[fault]'
  }
}
