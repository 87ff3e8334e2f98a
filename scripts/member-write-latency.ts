/**
 * `npm run bench:member-write -- [--writes 200]`: a member's write next to a voter's, on in-process
 * agents over TCP (3 voters, 1 standby, 2 members; defaults otherwise). For each writer: single-writer
 * p50/p99 of `consensus.propose`, and the read-your-write lag: from the write's answer until the writer's own
 * copy answers the new value to a `'local'` read (a member's copy is fed by a replica; a follower's by Raft);
 * and 64 writers at once from the follower and the member.
 * The last line of stdout is the figures as JSON.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import type { MemberTier } from '../src/agent/member.ts'
import type { ConclaveService } from '../src/agent/service.ts'
import { type Agent, createAgent } from '../src/index.ts'

const writesArg = process.argv.indexOf('--writes')
const WRITES = writesArg > 0 ? Number(process.argv[writesArg + 1]) : 200
/** The pause between two single writes. */
const QUIET_MS = 30

function tierOf(agent: Agent): MemberTier {
  const service = (agent.libp2p as Libp2p<{ conclave: ConclaveService }>).services.conclave
  return (service as unknown as { tier: MemberTier }).tier
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN
}

async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/**
 * Writes one key at a time from each writer in turn (so that all meet the same load: this machine's is
 * noisy), a pause between writes; times each write, then how long until the writer's own copy shows it.
 */
async function measure(writers: Record<string, Agent>, prefix: string): Promise<Record<string, Figures>> {
  const write = new Map<string, number[]>()
  const visible = new Map<string, number[]>()
  for (let i = 0; i < WRITES; i++) {
    for (const [who, writer] of Object.entries(writers)) {
      const key = `${prefix}/${who}/${i}`
      const started = performance.now()
      await writer.consensus.propose(key, i)
      const answered = performance.now()
      while ((await writer.consensus.get(key, { consistency: 'local' })) !== i) {
        await new Promise(resolve => setImmediate(resolve))
      }
      if (!write.has(who)) write.set(who, [])
      if (!visible.has(who)) visible.set(who, [])
      write.get(who)?.push(answered - started)
      visible.get(who)?.push(performance.now() - answered)
      // The agents share this process: a write sent while the cluster still persists and applies the last
      // one waits for that work, whoever sends it. Each starts from a quiet cluster.
      await new Promise(resolve => setTimeout(resolve, QUIET_MS))
    }
  }
  const out: Record<string, Figures> = {}
  for (const who of Object.keys(writers)) {
    const w = write.get(who) ?? []
    const v = visible.get(who) ?? []
    out[who] = {
      writeP50: percentile(w, 50),
      writeP99: percentile(w, 99),
      readYourWriteP50: percentile(v, 50),
      readYourWriteP99: percentile(v, 99),
      writeThenLocalReadP50: percentile(
        w.map((x, i) => x + (v[i] ?? 0)),
        50,
      ),
    }
  }
  return out
}

interface Figures {
  writeP50: number
  writeP99: number
  readYourWriteP50: number
  readYourWriteP99: number
  writeThenLocalReadP50: number
}

/** 64 writers at once, `WRITES * 4` writes: operations per second. */
async function throughput(writer: Agent, prefix: string): Promise<number> {
  let next = 0
  const total = WRITES * 4
  const started = performance.now()
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < total) {
        const i = next++
        await writer.consensus.propose(`${prefix}/${i}`, i)
      }
    }),
  )
  return total / ((performance.now() - started) / 1000)
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'conclave-member-write-'))
  const agents: Agent[] = []
  try {
    const founder = await createAgent({ name: 'r0', dataDir: join(root, 'r0') })
    agents.push(founder)
    await founder.join({ voters: 3, standbys: 1 })
    for (let i = 1; i < 6; i++) {
      const agent = await createAgent({ name: `a${i}`, dataDir: join(root, `a${i}`) })
      agents.push(agent)
      await agent.join({ bootstrap: founder.multiaddrs() })
    }
    await until(() => agents.filter(agent => tierOf(agent).isMember).length === 2, 30_000)
    const leader = agents.find(agent => agent.isLeader())
    const members = agents.filter(agent => tierOf(agent).isMember)
    const follower = agents.find(agent => agent !== leader && !tierOf(agent).isMember)
    if (leader === undefined || follower === undefined || members[0] === undefined)
      throw new Error('no leader, follower or member')
    const writers = { leader, replica: follower, member: members[0] }
    // Warm up every path once.
    await measure(writers, 'warm')
    const results = await measure(writers, 'measured')
    const concurrent64 = {
      replica: await throughput(follower, 'replica-64'),
      member: await throughput(members[0], 'member-64'),
    }
    for (const [who, figures] of Object.entries(results)) {
      console.log(
        `${who.padEnd(8)} write p50 ${figures.writeP50.toFixed(2)} ms, p99 ${figures.writeP99.toFixed(2)} ms; own copy shows it after p50 ${figures.readYourWriteP50.toFixed(2)} ms, p99 ${figures.readYourWriteP99.toFixed(2)} ms; write + local read p50 ${figures.writeThenLocalReadP50.toFixed(2)} ms`,
      )
    }
    console.log(
      `member / replica write p50: ${(results.member.writeP50 / results.replica.writeP50).toFixed(2)}x; write + local read: ${(results.member.writeThenLocalReadP50 / results.replica.writeThenLocalReadP50).toFixed(2)}x`,
    )
    console.log(
      `64 at once: replica ${Math.round(concurrent64.replica)}/s, member ${Math.round(concurrent64.member)}/s (${(concurrent64.member / concurrent64.replica).toFixed(2)}x)`,
    )
    console.log(JSON.stringify({ writes: WRITES, ...results, concurrent64 }))
  } finally {
    await Promise.all(agents.map(agent => agent.stop().catch(() => {})))
    rmSync(root, { recursive: true, force: true })
  }
}

await main()
