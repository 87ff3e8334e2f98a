/**
 * `conclave snapshot save <file>`: a consistent snapshot of a running cluster, fetched from any agent (it
 * takes it after a linearizable barrier) and written with its integrity hash. `conclave snapshot restore
 * <file> --data-dir <dir>`: a new cluster (new cluster id, one voter) seeded from it, for `conclave agent
 * --data-dir <dir>` to run.
 */

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs'
import type { ParsedArgs } from './args.ts'
import { UsageError } from './args.ts'
import type { CliCommand } from './command.ts'
import { CLIENT_OPTIONS, withConnection } from './connection.ts'
import { CliError, printJson, printLine } from './output.ts'

const saveCommand: CliCommand = {
  spec: {
    name: 'snapshot save',
    summary: 'write a consistent snapshot of the cluster to a file',
    details:
      'The agent it talks to takes the snapshot once a quorum confirmed it has applied every write\n' +
      'acknowledged before the request; the file holds that state, its revision and a sha256 of it all.',
    positionals: [{ name: 'file', description: 'where to write it (replaced if it exists)' }],
    options: CLIENT_OPTIONS,
  },
  async run(args: ParsedArgs): Promise<number> {
    const [file] = args.positionals
    const { decodeSnapshotFile } = await import('../backup/snapshot-file.ts')
    const bytes = await withConnection(args, async connection => {
      let answer = await connection.call('snapshot.save', {})
      const whole = new Uint8Array(answer.totalBytes)
      for (;;) {
        const chunk = Buffer.from(answer.chunk, 'base64')
        whole.set(chunk, answer.offset)
        const next = answer.offset + chunk.length
        if (next >= answer.totalBytes) break
        answer = await connection.call('snapshot.save', { handle: answer.handle, offset: next })
      }
      return whole
    })
    // Checked before it reaches the file: what arrives is what the agent hashed.
    const header = decodeSnapshotFile(bytes)
    writeFileDurably(file, bytes)
    const result = {
      file,
      bytes: bytes.length,
      revision: header.revision,
      index: header.index,
      term: header.term,
      clusterId: header.clusterId,
      takenBy: header.takenBy,
    }
    if (args.options.json === true) printJson(result)
    else {
      printLine(
        `snapshot saved to ${file}: revision ${header.revision}, Raft index ${header.index}, ` +
          `${bytes.length} bytes, cluster ${header.clusterId}`,
      )
    }
    return 0
  },
}

const restoreCommand: CliCommand = {
  spec: {
    name: 'snapshot restore',
    summary: 'seed a new cluster from a snapshot file into an empty data directory',
    details:
      'Writes a new cluster (new cluster id) with one voter into --data-dir, which must be empty or new.\n' +
      "Then run 'conclave agent --data-dir <dir>': it leads alone and serves the snapshot's keys, locks'\n" +
      'fencing counters and tasks; other agents join it with --bootstrap. A file that is truncated or\n' +
      'altered fails its hash check and nothing is written.',
    positionals: [{ name: 'file', description: "a file 'conclave snapshot save' wrote" }],
    options: [
      {
        name: 'data-dir',
        kind: 'string',
        placeholder: '<dir>',
        description: 'the new agent’s data directory (must be empty or not exist)',
      },
      {
        name: 'cluster-id',
        kind: 'string',
        placeholder: '<id>',
        description: 'the new cluster id (default random)',
      },
      { name: 'json', kind: 'boolean', description: 'print JSON' },
    ],
  },
  async run(args: ParsedArgs): Promise<number> {
    const [file] = args.positionals
    const dataDir = args.options['data-dir']
    if (typeof dataDir !== 'string' || dataDir === '') throw new UsageError('--data-dir is required')
    let bytes: Uint8Array
    try {
      bytes = readFileSync(file)
    } catch (err) {
      throw new UsageError(`cannot read ${file}: ${(err as Error).message}`)
    }
    const { restoreSnapshot } = await import('../backup/restore.ts')
    const clusterId = args.options['cluster-id'] as string | undefined
    const restored = await restoreSnapshot(bytes, dataDir, clusterId === undefined ? {} : { clusterId })
    const result = {
      dataDir: restored.dataDir,
      clusterId: restored.clusterId,
      agentId: restored.agentId,
      revision: restored.snapshot.revision,
      index: restored.snapshot.index,
      fromCluster: restored.snapshot.clusterId,
    }
    if (args.options.json === true) printJson(result)
    else {
      printLine(
        `restored revision ${restored.snapshot.revision} of cluster ${restored.snapshot.clusterId} into ` +
          `${restored.dataDir}: new cluster ${restored.clusterId}, its voter ${restored.agentId}`,
      )
      printLine(`start it with: conclave agent --data-dir ${dataDir}`)
    }
    return 0
  },
}

export const snapshotCommands: CliCommand[] = [saveCommand, restoreCommand]

/** Writes `bytes` to `<file>.part`, fsyncs it and renames it over `file`: a crash leaves no half file. */
function writeFileDurably(file: string, bytes: Uint8Array): void {
  const part = `${file}.part`
  try {
    const descriptor = openSync(part, 'w', 0o600)
    try {
      let written = 0
      while (written < bytes.length) written += writeSync(descriptor, bytes, written)
      fsyncSync(descriptor)
    } finally {
      closeSync(descriptor)
    }
    renameSync(part, file)
  } catch (err) {
    rmSync(part, { force: true })
    throw new CliError('WriteError', `cannot write ${file}: ${(err as Error).message}`)
  }
}
