/**
 * `conclave psk [file]`: generates a private-network key (the libp2p swarm.key format). With a file, writes
 * it there readable by its owner only (0600) and refuses to overwrite an existing file unless `--force` is
 * given; without one (or with `-`), prints it to standard output.
 */

import { writeFileSync } from 'node:fs'
import { generatePsk } from '../net/pnet.ts'
import type { ParsedArgs } from './args.ts'
import type { CliCommand } from './command.ts'
import { CliError } from './output.ts'

export const pskCommand: CliCommand = {
  spec: {
    name: 'psk',
    summary: 'Write a new pre-shared key for a private network (give the same file to every agent).',
    details:
      'Agents started with --psk <file> (or the psk option) connect only to holders of the same key;\n' +
      'clients pass it as --psk or CONCLAVE_PSK. The file is created with mode 0600.',
    positionals: [
      {
        name: 'file',
        description: 'where to write the key (default or "-": standard output)',
        optional: true,
      },
    ],
    options: [{ name: 'force', kind: 'boolean', description: 'replace an existing file' }],
  },
  async run(args: ParsedArgs): Promise<number> {
    const key = generatePsk()
    const file = args.positionals[0]
    if (file === undefined || file === '-') {
      process.stdout.write(key)
      return 0
    }
    const force = args.options.force === true
    try {
      writeFileSync(file, key, { mode: 0o600, flag: force ? 'w' : 'wx' })
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EEXIST')
        throw new CliError('FileExistsError', `${file} exists; pass --force to replace it`)
      throw new CliError('WriteError', `could not write ${file} (${code ?? (err as Error).message})`)
    }
    process.stderr.write(
      `wrote a new pre-shared key to ${file}; give the same file to every agent of the network\n`,
    )
    return 0
  },
}
