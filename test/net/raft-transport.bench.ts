/**
 * Raft transport throughput and latency over TCP loopback (not part of the test suite):
 *   node_modules/.bin/node test/net/raft-transport.bench.ts [messages]
 * Runs twice: both nodes in this process, then the receiver in a child process (the realistic case; on a
 * 2-core machine the in-process run shares one event loop between both ends).
 * Throughput: small appends (one 64-byte entry) streamed one way. Latency: one append at a time, answered
 * by an appendResponse.
 */

import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createConclaveLibp2p } from '../../src/net/libp2p-node.ts'
import { type RaftTransport, raftTransport } from '../../src/net/raft-transport.ts'
import type { Message } from '../../src/raft/types.ts'
import { smallAppend } from './arbitraries.ts'

const THROUGHPUT_TERM = 1
const LATENCY_TERM = 2
const ROUND_TRIPS = 3_000

async function createNode() {
  return createConclaveLibp2p({ transport: 'tcp', services: { raft: raftTransport() } })
}

/** The receiving side: answers latency probes, and the last message of a throughput run. */
function serve(raft: RaftTransport, self: string, total: number, onDone?: () => void): void {
  let count = 0
  raft.onMessage = (msg, from) => {
    if (msg.type !== 'append') return
    if (msg.term === THROUGHPUT_TERM && ++count < total) return
    if (msg.term === THROUGHPUT_TERM) onDone?.()
    const index = msg.entries[0].index
    const answer: Message = {
      type: 'appendResponse',
      from: self,
      to: from,
      term: msg.term,
      success: true,
      index,
      hintIndex: 0,
      hintTerm: 0,
    }
    raft.send(from, answer)
  }
}

async function measure(raft: RaftTransport, self: string, peer: string, total: number): Promise<void> {
  let waiting: (() => void) | undefined
  raft.onMessage = () => waiting?.()
  const next = () => new Promise<void>(resolve => (waiting = resolve))

  // Warm up the stream and the JIT.
  for (let i = 1; i <= 200; i++) {
    const answered = next()
    raft.send(peer, { ...smallAppend(self, peer, i), term: LATENCY_TERM })
    await answered
  }

  const started = performance.now()
  const done = next()
  for (let index = 1; index <= total; index++) {
    raft.send(peer, { ...smallAppend(self, peer, index), term: THROUGHPUT_TERM })
    if (index % 500 === 0) await new Promise(resolve => setImmediate(resolve))
  }
  await done
  const seconds = (performance.now() - started) / 1000

  const rtts: number[] = []
  for (let i = 1; i <= ROUND_TRIPS; i++) {
    const answered = next()
    const sent = performance.now()
    raft.send(peer, { ...smallAppend(self, peer, i), term: LATENCY_TERM })
    await answered
    rtts.push(performance.now() - sent)
  }
  rtts.sort((x, y) => x - y)
  const at = (q: number) => rtts[Math.floor(q * (rtts.length - 1))].toFixed(3)
  const stats = raft.stats()
  console.log(
    `  ${total} appends in ${seconds.toFixed(2)} s = ${Math.round(total / seconds)} msg/s ` +
      `(${((stats.bytesSent / seconds) * 8e-6).toFixed(0)} Mbit/s framed); dropped ${stats.dropped}`,
  )
  console.log(
    `  round trip append -> appendResponse: p50 ${at(0.5)} ms, p90 ${at(0.9)} ms, p99 ${at(0.99)} ms`,
  )
}

async function inProcess(total: number): Promise<void> {
  const a = await createNode()
  const b = await createNode()
  await a.peerStore.merge(b.peerId, { multiaddrs: b.getMultiaddrs() })
  serve(b.services.raft, b.peerId.toString(), total)
  console.log('both nodes in one process:')
  await measure(a.services.raft, a.peerId.toString(), b.peerId.toString(), total)
  await a.stop()
  await b.stop()
}

async function twoProcesses(total: number): Promise<void> {
  const child = spawn(process.execPath, [import.meta.filename, 'serve', String(total)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const lines = createInterface({ input: child.stdout })
  const [line] = await new Promise<string[]>(resolve => lines.once('line', l => resolve([l])))
  const { peerId, addrs } = JSON.parse(line) as { peerId: string; addrs: string[] }
  const a = await createNode()
  await a.peerStore.merge(peerIdFromString(peerId), { multiaddrs: addrs.map(addr => multiaddr(addr)) })
  console.log('receiver in a child process:')
  await measure(a.services.raft, a.peerId.toString(), peerId, total)
  await a.stop()
  child.kill()
}

const [mode, count] = process.argv.slice(2)
if (mode === 'serve') {
  const node = await createNode()
  serve(node.services.raft, node.peerId.toString(), Number(count))
  console.log(JSON.stringify({ peerId: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) }))
} else {
  const total = Number(mode ?? 100_000)
  await inProcess(total)
  await twoProcesses(total)
}
