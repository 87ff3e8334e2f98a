/**
 * conclave's streams on real TCP + Noise + Yamux: one socket write per small message (joined sends, lazy
 * window updates), and nothing lost or stuck when a stream carries far more than a window.
 */
import net from 'node:net'
import type { Stream } from '@libp2p/interface'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createConclaveLibp2p } from '../../src/net/libp2p-node.ts'
import { lazyWindowUpdates } from '../../src/net/window-updates.ts'

type Node = Awaited<ReturnType<typeof createConclaveLibp2p>>

const ECHO = '/conclave-test/echo/1.0.0'
const SINK = '/conclave-test/sink/1.0.0'
const FLAPPING = '/conclave-test/flapping/1.0.0'

let a: Node
let b: Node
const sinks: { stream: Stream; received: Uint8Array[]; pausedFor: number }[] = []
/** A sink stops reading for this long once it has received a quarter of `SINK_TOTAL`. */
const SINK_PAUSE_MS = 200
const SINK_TOTAL = 12 * 1024 * 1024

beforeAll(async () => {
  a = await createConclaveLibp2p()
  b = await createConclaveLibp2p()
  await b.handle(ECHO, stream => {
    if (stream.protocol === ECHO && echoLazy) lazyWindowUpdates(stream)
    stream.addEventListener('message', evt => {
      stream.send(evt.data)
    })
  })
  await b.handle(SINK, stream => {
    lazyWindowUpdates(stream)
    const sink = { stream, received: [] as Uint8Array[], pausedFor: 0 }
    sinks.push(sink)
    let bytes = 0
    stream.addEventListener('message', evt => {
      sink.received.push(evt.data.subarray())
      bytes += evt.data.byteLength
      if (sink.pausedFor === 0 && bytes >= SINK_TOTAL / 4) {
        // The reader stops: the sender must stop at the window, and go on once it resumes.
        const pausedAt = performance.now()
        stream.pause()
        setTimeout(() => {
          sink.pausedFor = performance.now() - pausedAt
          stream.resume()
        }, SINK_PAUSE_MS)
        sink.pausedFor = -1
      }
    })
  })
})

/** Streams of a reader that pauses and resumes every few ms, with what each received and how it closed. */
const flapping: { stream: Stream; bytes: number; closeError?: Error }[] = []

beforeAll(async () => {
  await b.handle(FLAPPING, stream => {
    lazyWindowUpdates(stream)
    const reader: (typeof flapping)[number] = { stream, bytes: 0 }
    flapping.push(reader)
    stream.addEventListener('message', evt => {
      reader.bytes += evt.data.byteLength
    })
    stream.addEventListener('close', evt => {
      reader.closeError = evt.error
    })
  })
})

afterAll(async () => {
  await a?.stop()
  await b?.stop()
})

let echoLazy = true

/** Socket writes per round trip of one 100-byte message on a new echo stream. */
async function writesPerRoundTrip(lazy: boolean): Promise<number> {
  echoLazy = lazy
  const stream = await a.dialProtocol(b.getMultiaddrs()[0], ECHO)
  if (lazy) expect(lazyWindowUpdates(stream)).toBe(true)
  const roundTrip = () =>
    new Promise<void>(resolve => {
      stream.addEventListener('message', () => resolve(), { once: true })
      stream.send(new Uint8Array(100))
    })
  for (let i = 0; i < 20; i++) await roundTrip()
  let writes = 0
  const write = net.Socket.prototype.write
  net.Socket.prototype.write = function (this: net.Socket, ...args: Parameters<typeof write>) {
    writes++
    return write.apply(this, args)
  } as typeof write
  const rounds = 300
  try {
    for (let i = 0; i < rounds; i++) await roundTrip()
  } finally {
    net.Socket.prototype.write = write
  }
  await stream.close()
  return writes / rounds
}

describe('small messages on conclave streams', () => {
  it('take one socket write each way per round trip', async () => {
    // 2: the message and its echo. Without lazy updates each side also sends a window update per message.
    expect(await writesPerRoundTrip(true)).toBeLessThanOrEqual(2.05)
    expect(await writesPerRoundTrip(false)).toBeGreaterThanOrEqual(3.9)
  })
})

describe('a stream with lazy window updates', () => {
  it('carries 12 MiB, far over its window, in order, through a reader that pauses for a while', async () => {
    const stream = await a.dialProtocol(b.getMultiaddrs()[0], SINK)
    expect(lazyWindowUpdates(stream)).toBe(true)
    const chunk = 16 * 1024
    const total = SINK_TOTAL
    let sent = 0
    while (sent < total) {
      const data = new Uint8Array(chunk)
      new DataView(data.buffer).setUint32(0, sent / chunk)
      sent += chunk
      if (!stream.send(data)) await stream.onDrain()
    }
    const sink = await waitFor(() => sinks.at(-1))
    const received = () => sink.received.reduce((sum, part) => sum + part.byteLength, 0)
    await waitFor(() => (received() === total ? true : undefined))
    const all = Buffer.concat(sink.received)
    for (let n = 0; n < total / chunk; n++) expect(all.readUInt32BE(n * chunk)).toBe(n)
    expect(sink.pausedFor).toBeGreaterThanOrEqual(SINK_PAUSE_MS - 5)
  }, 30_000)
})

describe('a reader that pauses and resumes every 3 ms', () => {
  it('is never sent more than it may buffer: 12 MiB arrive and the stream stays open', async () => {
    // Before conclave capped Yamux's window at the read buffer (4 MiB), the window grew to 16 MiB and a
    // paused reader's stream was reset in most runs of this test.
    const stream = await a.dialProtocol(b.getMultiaddrs()[0], FLAPPING)
    expect(lazyWindowUpdates(stream)).toBe(true)
    const total = 12 * 1024 * 1024
    const flap = setInterval(() => {
      const reader = flapping.at(-1)?.stream
      if (reader?.readStatus === 'readable') reader.pause()
      else if (reader?.readStatus === 'paused') reader.resume()
    }, 3)
    try {
      for (let sent = 0; sent < total; sent += 16 * 1024) {
        if (!stream.send(new Uint8Array(16 * 1024))) await stream.onDrain()
      }
      const reader = await waitFor(() => flapping.at(-1))
      await waitFor(() => (reader.bytes === total || reader.stream.status !== 'open' ? true : undefined))
      expect(reader.closeError).toBeUndefined()
      expect(reader.stream.status).toBe('open')
      expect(reader.bytes).toBe(total)
    } finally {
      clearInterval(flap)
      const reader = flapping.at(-1)?.stream
      if (reader?.readStatus === 'paused') reader.resume()
    }
  }, 30_000)
})

async function waitFor<T>(check: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const value = check()
    if (value !== undefined) return value
    if (Date.now() > end) throw new Error('timed out')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}
