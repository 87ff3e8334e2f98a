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
    positionals: [{ name: 'key', description: 'the key' }],
    options: [
      { name: 'local', kind: 'boolean', description: "read the agent's own copy: fast, maybe stale" },
      ...CLIENT_OPTIONS,
    ],
  },
  async run(args: ParsedArgs): Promise<number> {
    const [key] = args.positionals
    const consistency = args.options.local === true ? ('local' as const) : ('linearizable' as const)
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
            if (fromRevision === undefined) throw err
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

export const kvCommands: CliCommand[] = [put, get, del, watch]
