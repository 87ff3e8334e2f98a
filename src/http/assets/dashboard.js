// The conclave dashboard page: follows /events (server-sent events) and draws what it gets. No libraries;
// every value from the server goes in as text, never as markup.

const SVG = 'http://www.w3.org/2000/svg'
const TASK_STATES = ['pending', 'assigned', 'running', 'completed', 'failed', 'dead', 'expired']
const FEED_LIMIT = 300

const byId = id => document.getElementById(id)

function el(tag, attrs, ...children) {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs ?? {})) {
    // Through the CSSOM: the page's content security policy refuses style attributes.
    if (name === 'width%') node.style.width = `${value}%`
    else if (value !== undefined && value !== null) node.setAttribute(name, String(value))
  }
  for (const child of children)
    node.append(child instanceof Node ? child : document.createTextNode(String(child)))
  return node
}

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag)
  for (const [name, value] of Object.entries(attrs ?? {})) node.setAttribute(name, String(value))
  if (text !== undefined) node.textContent = String(text)
  return node
}

function ago(ms) {
  if (ms < 1500) return 'now'
  if (ms < 90_000) return `${Math.round(ms / 1000)} s ago`
  if (ms < 5_400_000) return `${Math.round(ms / 60_000)} min ago`
  return `${Math.round(ms / 3_600_000)} h ago`
}

function clock(at) {
  return new Date(at).toLocaleTimeString([], { hour12: false })
}

/** A colour per agent id, by order of first appearance: neighbours on the timeline differ clearly. */
const colours = new Map()
function colourOf(id) {
  if (id === '') return '#475569'
  if (!colours.has(id)) colours.set(id, `hsl(${Math.round((colours.size * 137.5 + 200) % 360)} 65% 55%)`)
  return colours.get(id)
}

function size(svg) {
  const box = svg.getBoundingClientRect()
  return { width: Math.max(100, Math.floor(box.width)), height: Math.max(60, Math.floor(box.height)) }
}

function renderHeader(state) {
  byId('agent-name').textContent = state.agent.name
  const leader = byId('leader-name')
  leader.textContent = state.leader === undefined ? 'none' : state.leader.name
  leader.dataset.id = state.leader?.id ?? ''
  byId('term').textContent = String(state.term)
  const health = byId('health')
  health.textContent = state.healthy ? 'healthy' : 'no quorum'
  health.className = `pill ${state.healthy ? 'ok' : 'bad'}`
  const alive = state.members.filter(member => member.status === 'alive').length
  byId('member-count').textContent = `${alive} alive / ${state.members.length}`
  const replication = byId('replication')
  replication.replaceChildren()
  if (state.replication !== undefined) {
    const r = state.replication
    replication.append(
      el('span', { class: 'label' }, 'this replica'),
      ` commit ${r.commit} · applied ${r.applied} · last ${r.lastIndex}`,
    )
  }
  byId('updated').textContent = `updated ${clock(state.at)}`
  byId('notes').textContent = state.notes.join(' · ')
}

function renderMembers(state) {
  const rows = state.members.map(member => {
    const down = member.status === 'dead' || member.status === 'left'
    const classes = [member.leader ? 'leader' : '', down ? 'down' : ''].filter(Boolean).join(' ')
    const loadBar = el('span', { class: 'load' }, el('span', { 'width%': Math.round(member.load * 100) }))
    return el(
      'tr',
      {
        class: classes,
        'data-id': member.id,
        'data-status': member.status,
        'data-leader': String(member.leader),
      },
      el(
        'td',
        { class: 'name' },
        `${member.leader ? '★ ' : ''}${member.name}${member.self ? ' (this agent)' : ''}`,
      ),
      el('td', {}, member.role),
      el('td', {}, member.replica === undefined ? '?' : member.replica ? 'yes' : 'no'),
      el('td', {}, el('span', { class: `pill status-${member.status}` }, member.status)),
      el('td', {}, loadBar, `${Math.round(member.load * 100)}%`),
      el('td', { class: 'mono' }, member.match ?? '–'),
      el('td', {}, ago(state.at - member.lastSeen)),
      el('td', { class: 'mono spiffe', title: member.spiffeId ?? '' }, member.spiffeId ?? '–'),
      el('td', { class: 'mono', title: member.id }, member.id.slice(-10)),
    )
  })
  byId('members').tBodies[0].replaceChildren(...rows)
  byId('match-hint').textContent =
    state.replication?.fromLeader === true
      ? 'match index as this leader knows it'
      : state.replication === undefined
        ? ''
        : 'match indexes are known to the leader: open its dashboard for them'
}

function renderTimeline(state) {
  const svg = byId('timeline')
  const { width, height } = size(svg)
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`)
  const spans = state.leaders
  const children = []
  const left = 34
  const right = width - 8
  const top = 18
  const bottom = height - 20
  if (spans.length === 0) {
    svg.replaceChildren(svgEl('text', { x: left, y: top + 20 }, 'no leader seen yet'))
    return
  }
  const end = state.at
  const start = Math.max(spans[0].at, end - 10 * 60_000)
  const scaleX = at => left + ((Math.max(at, start) - start) / Math.max(1, end - start)) * (right - left)
  const terms = spans.map(span => span.term)
  const minTerm = Math.min(...terms)
  const maxTerm = Math.max(...terms, minTerm + 1)
  const scaleY = term => bottom - ((term - minTerm) / (maxTerm - minTerm)) * (bottom - top - 22) - 22
  children.push(svgEl('line', { class: 'axis', x1: left, x2: right, y1: bottom, y2: bottom }))
  const points = []
  spans.forEach((span, index) => {
    const x0 = scaleX(span.at)
    const x1 = index + 1 < spans.length ? scaleX(spans[index + 1].at) : right
    if (x1 <= x0 && index + 1 < spans.length) return
    const band = svgEl('rect', {
      x: x0,
      y: bottom - 16,
      width: Math.max(1, x1 - x0),
      height: 14,
      fill: colourOf(span.leader),
      opacity: 0.85,
    })
    band.append(
      svgEl(
        'title',
        {},
        `${span.leader === '' ? 'no leader' : span.name} · term ${span.term} · from ${clock(span.at)}`,
      ),
    )
    children.push(band)
    if (x1 - x0 > 50) {
      children.push(
        svgEl(
          'text',
          { x: x0 + 4, y: bottom - 5, class: 'band-label' },
          span.leader === '' ? '—' : span.name,
        ),
      )
    }
    const y = scaleY(span.term)
    points.push(`${x0},${y}`, `${x1},${y}`)
    if (x1 - x0 > 30) children.push(svgEl('text', { x: x0 + 3, y: y - 4 }, `t${span.term}`))
  })
  children.push(svgEl('polyline', { class: 'term', points: points.join(' ') }))
  children.push(svgEl('text', { x: 2, y: scaleY(maxTerm) + 4 }, maxTerm))
  children.push(svgEl('text', { x: 2, y: scaleY(minTerm) + 4 }, minTerm))
  children.push(svgEl('text', { x: left, y: height - 4 }, clock(start)))
  children.push(svgEl('text', { x: right - 50, y: height - 4 }, clock(end)))
  children.push(svgEl('text', { x: left, y: 12 }, `${spans.length - 1} leader changes`))
  svg.replaceChildren(...children)
}

function renderTasks(state) {
  const body = byId('task-states').tBodies[0]
  if (state.tasks === undefined) {
    body.replaceChildren(el('tr', {}, el('td', { class: 'empty' }, 'not available')))
  } else {
    body.replaceChildren(
      ...TASK_STATES.map(name =>
        el(
          'tr',
          { 'data-state': name },
          el('td', {}, name),
          el('td', { class: 'count' }, state.tasks[name] ?? 0),
        ),
      ),
    )
  }
  const svg = byId('throughput')
  const { width, height } = size(svg)
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`)
  const seconds = 60
  const end = Math.floor(state.at / 1000) * 1000
  const buckets = new Map(state.throughput.map(bucket => [bucket.at, bucket]))
  let peak = 1
  let total = 0
  for (let i = 0; i < seconds; i++) {
    const bucket = buckets.get(end - i * 1000)
    if (bucket !== undefined) {
      peak = Math.max(peak, bucket.completed + bucket.failed)
      total += bucket.completed
    }
  }
  const top = 14
  const bottom = height - 14
  const barWidth = (width - 4) / seconds
  const children = [svgEl('line', { class: 'axis', x1: 0, x2: width, y1: bottom, y2: bottom })]
  for (let i = 0; i < seconds; i++) {
    const bucket = buckets.get(end - (seconds - 1 - i) * 1000)
    if (bucket === undefined) continue
    const x = 2 + i * barWidth
    const completed = (bucket.completed / peak) * (bottom - top)
    const failed = (bucket.failed / peak) * (bottom - top)
    children.push(
      svgEl('rect', {
        class: 'completed',
        x,
        y: bottom - completed,
        width: Math.max(1, barWidth - 1),
        height: completed,
      }),
    )
    if (failed > 0) {
      children.push(
        svgEl('rect', {
          class: 'failed',
          x,
          y: bottom - completed - failed,
          width: Math.max(1, barWidth - 1),
          height: failed,
        }),
      )
    }
  }
  children.push(svgEl('text', { x: 2, y: 11 }, `peak ${peak}/s`))
  children.push(svgEl('text', { x: 2, y: height - 2 }, '60 s ago'))
  children.push(svgEl('text', { x: width - 28, y: height - 2 }, 'now'))
  svg.replaceChildren(...children)
  byId('throughput-hint').textContent = `${(total / seconds).toFixed(1)} completed/s over the last minute`
}

function renderCoordination(state) {
  const locks = byId('locks').tBodies[0]
  if (state.locks === undefined || state.locks.length === 0) {
    locks.replaceChildren(
      el(
        'tr',
        {},
        el(
          'td',
          { class: 'empty', colspan: 5 },
          state.locks === undefined ? 'not available' : 'no lock held',
        ),
      ),
    )
  } else {
    locks.replaceChildren(
      ...state.locks.map(lock =>
        el(
          'tr',
          { 'data-key': lock.key },
          el('td', { class: 'mono' }, lock.key),
          el('td', { title: lock.holder }, lock.holderName || '?'),
          el('td', { class: 'mono' }, lock.fencingToken),
          el('td', {}, `${Math.max(0, lock.expiresInMs / 1000).toFixed(1)} s`),
          el('td', {}, lock.waiters),
        ),
      ),
    )
  }
  const elections = byId('elections').tBodies[0]
  if (state.elections === undefined || state.elections.length === 0) {
    elections.replaceChildren(
      el(
        'tr',
        {},
        el(
          'td',
          { class: 'empty', colspan: 4 },
          state.elections === undefined ? 'not available' : 'no named election',
        ),
      ),
    )
  } else {
    elections.replaceChildren(
      ...state.elections.map(election =>
        el(
          'tr',
          { 'data-name': election.name },
          el('td', { class: 'mono' }, election.name),
          el('td', { title: election.leader }, election.leaderName || '—'),
          el('td', { class: 'mono' }, election.term),
          el('td', {}, election.candidates),
        ),
      ),
    )
  }
}

let lastSeq = 0

function addFeed(entries) {
  const feed = byId('feed')
  for (const entry of entries) {
    if (entry.seq <= lastSeq) continue
    lastSeq = entry.seq
    const item = el(
      'li',
      { class: `k-${entry.kind}`, 'data-kind': entry.kind },
      el('time', {}, clock(entry.at)),
      el('span', { class: 'kind' }, entry.kind),
      entry.text,
    )
    feed.prepend(item)
  }
  while (feed.children.length > FEED_LIMIT) feed.lastElementChild.remove()
}

let latest

function render(state) {
  latest = state
  renderHeader(state)
  renderMembers(state)
  renderTimeline(state)
  renderTasks(state)
  renderCoordination(state)
}

function connect() {
  const connection = byId('connection')
  const source = new EventSource('events')
  source.addEventListener('open', () => {
    connection.textContent = 'live'
    connection.className = 'pill ok'
  })
  source.addEventListener('error', () => {
    connection.textContent = 'reconnecting'
    connection.className = 'pill warn'
  })
  source.addEventListener('starting', () => {
    connection.textContent = 'agent starting'
    connection.className = 'pill warn'
  })
  source.addEventListener('state', event => render(JSON.parse(event.data)))
  source.addEventListener('feed', event => addFeed(JSON.parse(event.data)))
  // A restarted agent numbers its feed from 1 again.
  source.addEventListener('open', () => {
    lastSeq = 0
    byId('feed').replaceChildren()
  })
}

window.addEventListener('resize', () => {
  if (latest !== undefined) render(latest)
})
connect()
