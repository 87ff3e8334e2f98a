import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterAll, describe, expect, it } from 'vitest'
import { META_CLUSTER_ID, META_LEFT, META_PEER_ID, META_PEER_KEY } from '../../src/backup/agent-meta.ts'
import { SqliteRaftStorage } from '../../src/storage/sqlite-storage.ts'
import { RunningCli } from './helpers.ts'

const dataRoot = mkdtempSync(join(tmpdir(), 'conclave-cli-upgrade-'))
afterAll(() => rmSync(dataRoot, { recursive: true, force: true }))

const encoder = new TextEncoder()

/**
 * A single voter's data directory whose log holds, committed at index 2, a command of a type this version
 * does not know: what a downgraded agent finds.
 */
async function dirWithNewerEntry(dir: string): Promise<void> {
  const key = await generateKeyPair('Ed25519')
  const agentId = peerIdFromPrivateKey(key).toString()
  const storage = SqliteRaftStorage.open(dir)
  try {
    storage.setMeta(META_PEER_KEY, privateKeyToProtobuf(key))
    storage.setMeta(META_PEER_ID, encoder.encode(agentId))
    storage.setMeta(META_CLUSTER_ID, encoder.encode('newer-cluster'))
    storage.setMeta(META_LEFT, new Uint8Array([0]))
    storage.write({
      hardState: { term: 1, vote: agentId, commit: 2 },
      entries: [
        {
          index: 1,
          term: 1,
          type: 'normal',
          data: encoder.encode(JSON.stringify({ ts: 1, command: { type: 'put', key: 'k', value: 1 } })),
        },
        {
          index: 2,
          term: 1,
          type: 'normal',
          data: encoder.encode(JSON.stringify({ ts: 2, command: { type: 'renameKey', from: 'k', to: 'j' } })),
        },
      ],
      snapshot: {
        meta: { index: 0, term: 0, config: { voters: [agentId], nonVoters: [] } },
        data: new Uint8Array(),
      },
    })
  } finally {
    storage.close()
  }
}

describe('conclave agent on a log from a newer version', () => {
  it('stops applying at the entry it cannot apply, says why in one line, and exits 1', async () => {
    const dir = join(dataRoot, 'downgraded')
    await dirWithNewerEntry(dir)
    const agent = new RunningCli(['agent', '--name', 'downgraded', '--data-dir', dir])
    try {
      const line = await agent.line(/stopped applying the log/)
      expect(line).toMatch(
        /stopped applying the log at entry 2: it holds a command of type "renameKey", which this version does not know.*Upgrade it/,
      )
      const { code } = await agent.exited
      expect(code).toBe(1)
      // Said once, not again as a stack or a second error.
      expect(agent.lines.filter(printed => /stopped applying/.test(printed))).toHaveLength(1)
      expect(agent.stderr).toBe('')
    } finally {
      agent.child.kill('SIGKILL')
    }
  })
})
