/**
 * A targeted check of `Lock.isHeld()` ("never a false true") against the fastest way a lock can leave its
 * holder: the holder is cut off by a partition while another agent waits for the lock. The leader expires
 * the holder's session (its membership view declares the holder dead, or the ttl runs out) and grants the
 * lock to the waiter; from the moment that grant completes, the cut-off holder must say false.
 *
 * `node scripts/chaos/isolated-holder.ts [--session-ttl MS] [--rounds N]`: prints each round's timeline and
 * exits 1 if the holder said true after the waiter's grant.
 */
import { Cluster, killChildrenOnExit, sleep } from './cluster.ts'
import { twoWay } from './nemesis.ts'

function option(name: string, fallback: number): number {
  const args = process.argv.slice(2)
  const at = args.indexOf(`--${name}`)
  return at === -1 ? fallback : Number(args[at + 1])
}

async function main(): Promise<void> {
  killChildrenOnExit()
  const sessionTtlMs = option('session-ttl', 5000)
  const rounds = option('rounds', 3)
  const cluster = await Cluster.start({
    agents: 5,
    voters: 5,
    agentOptions: { sessionTtlMs },
    stderr: 'ignore',
  })
  let violations = 0
  try {
    await cluster.waitForVoters(60_000)
    for (let round = 0; round < rounds; round++) {
      const leader = await cluster.waitForLeader(10_000)
      const [holder, waiter] = cluster.slots.map(slot => slot.index).filter(index => index !== leader)
      const key = `isolated-holder/${round}`
      const held = (await cluster.chaos(holder, { op: 'acquire', key, ttl: 30_000, timeoutMs: 5000 })) as {
        handle: number
        token: string
      }
      const start = performance.now()
      const at = (): number => Math.round(performance.now() - start)
      let grantedAt: number | undefined
      let waiterToken = ''
      const waiting = cluster
        .chaos(waiter, { op: 'acquire', key, ttl: 30_000, timeoutMs: 60_000 }, 70_000)
        .then(answer => {
          grantedAt = at()
          waiterToken = (answer as { token: string }).token
        })
      await sleep(300)
      const others = cluster.slots.map(slot => slot.index).filter(index => index !== holder)
      await cluster.setPartition(twoWay([holder], others))
      const cutAt = at()
      let lastTrue = 0
      let trueAfterGrant = 0
      while (at() < 20_000) {
        const asked = at()
        const isHeld = (await cluster.chaos(holder, { op: 'held', handle: held.handle })) as boolean
        if (isHeld) {
          lastTrue = asked
          if (grantedAt !== undefined && asked > grantedAt) trueAfterGrant++
        } else if (grantedAt !== undefined) break
        await sleep(50)
      }
      await waiting
      violations += trueAfterGrant
      console.log(
        `round ${round}: holder ${cluster.slots[holder].name} (token ${held.token}) cut off at ${cutAt} ms; ${cluster.slots[waiter].name} granted (token ${waiterToken}) at ${grantedAt} ms; the holder said isHeld() = true until ${lastTrue} ms${trueAfterGrant > 0 ? `: ${trueAfterGrant} answers of true after the grant` : ''}`,
      )
      await cluster.heal()
      await sleep(3000)
    }
  } finally {
    await cluster.destroy()
  }
  console.log(violations > 0 ? `FAIL: two holders (session ttl ${sessionTtlMs} ms)` : 'PASS')
  process.exitCode = violations > 0 ? 1 : 0
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
