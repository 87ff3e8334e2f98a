import { readFile } from 'node:fs/promises'
import type { KvEntry, TxnRequest } from '../api.ts'
import type { ParsedArgs } from './args.ts'
import { UsageError } from './args.ts'
import type { CliCommand } from './command.ts'
import { CLIENT_OPTIONS, withConnection } from './connection.ts'
import { onStopSignal } from './hold.ts'
import { CliError, formatValue, printJson, printLine } from './output.ts'

/** How long one `kv.events` poll waits for an event. */
const WATCH_POLL_MS = 10_000

const expectRevision = {
  name: 'expect-revision',
  kind: 'integer' as const,
  placeholder: '<revision>',
  description: 'write only if the key is at this revision (0: only if absent)',
}

const put: CliCommand = {
  spec: {
    name: 'kv put',
    summary: 'Write a value, committed on a quorum when this returns; prints the new revision.',
    details: 'The value is stored as a string, or parsed as JSON data with --value-json.',
    positionals: [
      { name: 'key', description: 'the key' },
      { name: 'value', description: 'the value' },
    ],
    options: [
      { name: 'value-json', kind: 'boolean', description: 'parse <value> as JSON (numbers, objects, ...)' },
      expectRevision,
      ...CLIENT_OPTIONS,
    ],
  },
  async run(args: ParsedArgs): Promise<number> {
    const [key, text] = args.positionals
    let value: unknown = text
    if (args.options['value-json'] === true) {
      try {
        value = JSON.parse(text)
      } catch {
        throw new UsageError('<value> is not JSON (drop --value-json to store it as a string)')
      }
    }
    const expectedRevision = args.options['expect-revision'] as number | undefined
    const result = await withConnection(args, connection =>
      connection.call(
        'kv.put',
        expectedRevision === undefined ? { key, value } : { key, value, expectedRevision },
      ),
    )
    if (args.options.json === true) printJson({ key, revision: result.revision })
    else printLine(`OK revision ${result.revision}`)
    return 0
  },
}

const get: CliCommand = {
  spec: {
    name: 'kv get',
    summary: 'Print the value of a key (linearizable unless --local); exits 1 if the key is absent.',
    details:
      'With --entry, the value with its revision (of the last write), createRevision, version (writes since\n' +
      'it was created) and, for an ephemeral key, its owner: the revision is what --expect-revision and\n' +
      'transactions compare against.',
    positionals: [{ name: 'key', description: 'the key' }],
    options: [
      { name: 'local', kind: 'boolean', description: "read the agent's own copy: fast, maybe stale" },
      { name: 'entry', kind: 'boolean', description: 'print the revisions and version with the value' },
      ...CLIENT_OPTIONS,
    ],
  },
  async run(args: ParsedArgs): Promise<number> {
    const [key] = args.positionals
    const consistency = args.options.local === true ? ('local' as const) : ('linearizable' as const)
    if (args.options.entry === true) {
      const found = await withConnection(args, connection =>
        connection.call('kv.getEntry', { key, consistency }),
      )
      if (!found.found || found.entry === undefined) {
        throw new CliError('NotFoundError', `no key ${JSON.stringify(key)}`)
      }
      if (args.options.json === true) printJson(found.entry)
      else printLine(formatEntry(found.entry))
      return 0
    }
    const result = await withConnection(args, connection => connection.call('kv.get', { key, consistency }))
    if (!result.found) throw new CliError('NotFoundError', `no key ${JSON.stringify(key)}`)
    if (args.options.json === true) printJson({ key, value: result.value })
    else printLine(formatValue(result.value))
    return 0
  },
}

const del: CliCommand = {
  spec: {
    name: 'kv delete',
    summary: 'Delete a key; prints the revision (unchanged if the key was absent).',
    positionals: [{ name: 'key', description: 'the key' }],
    options: [expectRevision, ...CLIENT_OPTIONS],
  },
  async run(args: ParsedArgs): Promise<number> {
    const [key] = args.positionals
    const expectedRevision = args.options['expect-revision'] as number | undefined
    const result = await withConnection(args, connection =>
      connection.call('kv.delete', expectedRevision === undefined ? { key } : { key, expectedRevision }),
    )
    if (args.options.json === true) printJson({ key, revision: result.revision })
    else printLine(`OK revision ${result.revision}`)
    return 0
  },
}

const watch: CliCommand = {
  spec: {
    name: 'kv watch',
    summary: 'Print every change under a prefix, in revision order, until interrupted.',
    details:
      'Never skips or repeats a revision. Given several agents (--peer a,b or CONCLAVE_PEER=a,b), it goes on\n' +
      'from the last revision on the next one when its agent goes away. With --json, one JSON event per line:\n' +
      '{"type":"put","key":...,"value":...,"revision":...,"timestamp":...}',
    positionals: [{ name: 'prefix', description: 'key prefix (default: every key)', optional: true }],
    options: [
      {
        name: 'from-revision',
        kind: 'integer',
        placeholder: '<revision>',
        description: 'start at this revision (default: changes from now on)',
      },
      ...CLIENT_OPTIONS,
    ],
  },
  async run(args: ParsedArgs): Promise<number> {
    const prefix = args.positionals[0] ?? ''
    const json = args.options.json === true
    let fromRevision = args.options['from-revision'] as number | undefined
    const stop = onStopSignal()
    try {
      return await withConnection(args, async connection => {
        // A lost agent is replaced by the next one named (see Connection), from the revision reached.
        connection.onFailover = (from, to, reason) => {
          const at = fromRevision === undefined ? 'from now' : `from revision ${fromRevision}`
          process.stderr.write(`conclave: lost ${from} (${reason}); watching ${at} on ${to}\n`)
        }
        for (;;) {
          const poll = connection.call(
            'kv.events',
            fromRevision === undefined
              ? { prefix, waitMs: WATCH_POLL_MS }
              : { prefix, fromRevision, waitMs: WATCH_POLL_MS },
            { waitMs: WATCH_POLL_MS },
          )
          const answer = await Promise.race([poll, stop.signal]).catch((err: unknown) => {
            // Every agent named is gone (or refused): say where a later watch picks up without a gap.
            // A compacted revision names where to go on in its own message: repeating ours would fail again.
            if (fromRevision === undefined || (err as Error).name === 'CompactedError') throw err
            const name = (err as Error).name || 'Error'
            const hint = `; resume with --from-revision ${fromRevision}`
            throw new CliError(name, `${(err as Error).message}${hint}`)
          })
          if (typeof answer === 'string') {
            poll.catch(() => {})
            return 0
          }
          for (const event of answer.events) {
            if (json) printJson(event)
            else if (event.type === 'put') {
              printLine(`put ${event.key} ${formatValue(event.value)} (revision ${event.revision})`)
            } else printLine(`delete ${event.key} (revision ${event.revision})`)
          }
          fromRevision = answer.nextRevision
        }
      })
    } finally {
      stop.dispose()
    }
  },
}

/** Keys one `kv.list` call asks for. */
const LIST_PAGE = 1_000

const list: CliCommand = {
  spec: {
    name: 'kv list',
    summary: 'Print the keys under a prefix with their values, in byte order.',
    details:
      'Reads page after page of 1,000 keys (each page at one revision) until the prefix is done or --limit\n' +
      'keys are printed. With --json, one JSON document: {"prefix":...,"revision":...,"entries":[...]}, the\n' +
      'revision of the first page: `kv watch --from-revision <revision + 1>` goes on from there.',
    positionals: [{ name: 'prefix', description: "key prefix ('' for every key)" }],
    options: [
      { name: 'limit', kind: 'integer', placeholder: '<n>', description: 'print at most n keys' },
      { name: 'after', kind: 'string', placeholder: '<key>', description: 'start after this key' },
      { name: 'local', kind: 'boolean', description: "read the agent's own copy: fast, maybe stale" },
      ...CLIENT_OPTIONS,
    ],
  },
  async run(args: ParsedArgs): Promise<number> {
    const [prefix] = args.positionals
    const limit = args.options.limit as number | undefined
    if (limit !== undefined && limit < 1) throw new UsageError('--limit must be at least 1')
    const consistency = args.options.local === true ? ('local' as const) : ('linearizable' as const)
    const json = args.options.json === true
    return withConnection(args, async connection => {
      // Kept only for --json (one document); plain lines are printed page by page.
      const entries: KvEntry[] = []
      let printed = 0
      let after = args.options.after as string | undefined
      let revision: number | undefined
      for (;;) {
        const pageSize = limit === undefined ? LIST_PAGE : Math.min(LIST_PAGE, limit - printed)
        const page = await connection.call(
          'kv.list',
          after === undefined
            ? { prefix, limit: pageSize, consistency }
            : { prefix, limit: pageSize, after, consistency },
        )
        revision ??= page.revision
        for (const entry of page.entries) {
          if (json) entries.push(entry)
          else printLine(`${entry.key} ${formatValue(entry.value)} (revision ${entry.revision})`)
        }
        printed += page.entries.length
        if (!page.more || page.entries.length === 0) break
        if (limit !== undefined && printed >= limit) break
        after = page.entries[page.entries.length - 1].key
      }
      if (json) printJson({ prefix, revision, entries })
      return 0
    })
  },
}

const txn: CliCommand = {
  spec: {
    name: 'kv txn',
    summary: 'Run a transaction: compares, then the success or failure operations, all at one revision.',
    details:
      'The request is JSON, from <file> or standard input ("-" or no file), as the API takes it:\n' +
      '  {"compare":[{"key":"a","target":"revision","op":"==","value":7}],\n' +
      '   "success":[{"type":"put","key":"a","value":1},{"type":"delete","key":"b"}],\n' +
      '   "failure":[{"type":"deletePrefix","prefix":"tmp/"}]}\n' +
      'Targets: value, revision, createRevision, version, exists; ops ==, !=, <, >. Prints whether the\n' +
      'compares held and the revision; exits 0 either way (2 with --require-success when they did not).',
    positionals: [
      { name: 'file', description: 'the request as JSON (default: standard input)', optional: true },
    ],
    options: [
      {
        name: 'require-success',
        kind: 'boolean',
        description: 'exit 2 when the compares did not hold (the failure branch ran)',
      },
      ...CLIENT_OPTIONS,
    ],
  },
  async run(args: ParsedArgs): Promise<number> {
    const file = args.positionals[0]
    const text = file === undefined || file === '-' ? await readStdin() : await readRequestFile(file)
    let request: unknown
    try {
      request = JSON.parse(text)
    } catch {
      throw new UsageError(
        `the transaction request ${file === undefined ? 'on standard input' : file} is not JSON`,
      )
    }
    const result = await withConnection(args, connection =>
      connection.call('kv.txn', { request: request as TxnRequest }),
    )
    if (args.options.json === true) printJson(result)
    else printLine(`${result.succeeded ? 'SUCCEEDED' : 'FAILED'} revision ${result.revision}`)
    return !result.succeeded && args.options['require-success'] === true ? 2 : 0
  },
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

async function readRequestFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`)
  }
}

function formatEntry(entry: KvEntry): string {
  const owner = entry.ephemeral ? `, ephemeral, owner ${entry.owner}` : ''
  return (
    `${formatValue(entry.value)} (revision ${entry.revision}, created ${entry.createRevision}, ` +
    `version ${entry.version}${owner})`
  )
}

export const kvCommands: CliCommand[] = [put, get, del, watch, list, txn]
