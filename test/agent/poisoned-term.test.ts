/**
 * A durable Raft term poisoned under an older version (2^52, where a vote request at term + 1 no longer
 * encodes) is refused at start with a message naming the repair, and `conclave repair-term` brings the
 * agent back with its data.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createAgent } from '../../src/index.ts'
import { StorageFormatError } from '../../src/storage/errors.ts'
import { SqliteRaftStorage } from '../../src/storage/sqlite-storage.ts'
import { cli } from '../cli/helpers.ts'

const dir = mkdtempSync(join(tmpdir(), 'conclave-poisoned-'))
const dataDir = join(dir, 'a')

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('a poisoned Raft term', () => {
  it('is refused at start, repaired by conclave repair-term, and the data is kept', async () => {
    const agent = await createAgent({ name: 'a', dataDir, transport: 'memory' })
    await agent.join({})
    await agent.consensus.propose('kept', 'yes')
    await agent.stop()

    // What a forged response did to the durable term under an older version.
    const storage = SqliteRaftStorage.open(dataDir)
    const { hardState } = storage.load()
    storage.write({ hardState: { ...hardState, term: 2 ** 52, vote: '' }, entries: [] })
    storage.close()

    const poisoned = createAgent({ name: 'a', dataDir, transport: 'memory' }).then(async started => {
      try {
        await started.join({})
      } finally {
        await started.stop()
      }
    })
    await expect(poisoned).rejects.toBeInstanceOf(StorageFormatError)
    await expect(poisoned).rejects.toThrow(/repair-term/)

    const look = await cli(['repair-term', '--data-dir', dataDir, '--json'])
    expect(look.code).toBe(0)
    const seen = JSON.parse(look.stdout) as { term: number; lastLogTerm: number }
    expect(seen.term).toBe(2 ** 52)
    // Below the last log term is refused: a later election could reuse a term the log holds.
    const low = await cli(['repair-term', '--data-dir', dataDir, '--term', String(seen.lastLogTerm - 1)])
    expect(low.code).toBe(1)
    expect(low.stderr).toMatch(/InvalidArgumentError/)
    const fixed = await cli(['repair-term', '--data-dir', dataDir, '--term', String(seen.lastLogTerm + 1)])
    expect(fixed.code).toBe(0)

    const back = await createAgent({ name: 'a', dataDir, transport: 'memory' })
    try {
      await back.join({})
      expect(await back.consensus.get('kept')).toBe('yes')
      expect(back.election.term()).toBeGreaterThan(seen.lastLogTerm)
      expect(back.election.term()).toBeLessThan(seen.lastLogTerm + 10)
    } finally {
      await back.stop()
    }
  })

  it('refuses a directory with no storage, as a usage error', async () => {
    const result = await cli(['repair-term', '--data-dir', join(dir, 'none')])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/holds no conclave storage/)
  })
})
