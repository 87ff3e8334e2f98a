/**
 * `conclave repair-term`: the operator's way back from a Raft term poisoned by a forged or corrupted message
 * under an older version (a term past 2^48, where this version refuses to start). Run on a stopped agent's
 * data directory: without `--term` it prints the stored term and the last log term; with `--term N` it lowers
 * the stored term to N and clears the vote. Every agent of the cluster must be stopped and given the same N,
 * at least the highest last log term any of them printed, so no later election reuses a term a log holds.
 */

import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { SqliteRaftStorage, STORAGE_FILE_NAME } from '../storage/sqlite-storage.ts'
import { type ParsedArgs, UsageError } from './args.ts'
import type { CliCommand } from './command.ts'
import { printJson, printLine } from './output.ts'

export const repairTermCommand: CliCommand = {
  spec: {
    name: 'repair-term',
    summary: "lower a stopped agent's poisoned Raft term (operator repair)",
    details:
      'Stop every agent of the cluster. Run this without --term on each data directory and note the\n' +
      'highest "last log term" printed; then run it with --term <that + 1> on each, and start the agents.',
    positionals: [],
    options: [
      {
        name: 'data-dir',
        kind: 'string',
        placeholder: '<dir>',
        description: "the stopped agent's data directory",
      },
      { name: 'term', kind: 'integer', placeholder: '<n>', description: 'the term to store (see above)' },
      { name: 'json', kind: 'boolean', description: 'print JSON' },
    ],
  },
  async run(args: ParsedArgs): Promise<number> {
    const dataDir = args.options['data-dir']
    if (typeof dataDir !== 'string') throw new UsageError('--data-dir is required')
    // Opening would create an empty store: refuse a directory that holds none.
    if (!existsSync(join(dataDir, STORAGE_FILE_NAME))) {
      throw new UsageError(`--data-dir ${dataDir} holds no conclave storage (${STORAGE_FILE_NAME})`)
    }
    const storage = new SqliteRaftStorage(join(dataDir, STORAGE_FILE_NAME))
    try {
      const before = storage.load().hardState.term
      const lastLogTerm = storage.lastLogTerm()
      const term = args.options.term
      if (typeof term === 'number') storage.repairTerm(term)
      const result = {
        dataDir,
        term: typeof term === 'number' ? term : before,
        previousTerm: before,
        lastLogTerm,
      }
      if (args.options.json === true) printJson(result)
      else if (typeof term === 'number') printLine(`term ${before} -> ${term} (last log term ${lastLogTerm})`)
      else printLine(`term ${before}, last log term ${lastLogTerm}`)
      return 0
    } finally {
      storage.close()
    }
  },
}
