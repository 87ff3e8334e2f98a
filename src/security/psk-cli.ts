/**
 * `node src/security/psk-cli.ts [file]`: generates a private-network key (the libp2p swarm.key format).
 * With a file, writes it there readable by its owner only (0600) and refuses to overwrite an existing
 * file unless `--force` is given; without one (or with `-`), prints it to standard output.
 */

import { writeFileSync } from 'node:fs'
import { generatePsk } from '../net/pnet.ts'

export interface PskCommandIo {
  stdout(bytes: Uint8Array): void
  stderr(text: string): void
}

/** Runs the command with `args` (without the node and script paths); returns the exit code. */
export function runPskCommand(args: readonly string[], io: PskCommandIo): number {
  const force = args.includes('--force')
  const rest = args.filter(arg => arg !== '--force')
  if (rest.some(arg => arg === '--help' || arg === '-h') || rest.length > 1) {
    io.stderr(
      'usage: psk-cli [--force] [file]\n  writes a new pre-shared key for a private conclave network\n',
    )
    return rest.length > 1 ? 2 : 0
  }
  const key = generatePsk()
  const file = rest[0]
  if (file === undefined || file === '-') {
    io.stdout(key)
    return 0
  }
  try {
    writeFileSync(file, key, { mode: 0o600, flag: force ? 'w' : 'wx' })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    io.stderr(
      code === 'EEXIST'
        ? `${file} exists; pass --force to replace it\n`
        : `could not write ${file}: ${(err as Error).message}\n`,
    )
    return 1
  }
  io.stderr(`wrote a new pre-shared key to ${file}; give the same file to every agent of the network\n`)
  return 0
}

if (import.meta.main) {
  process.exitCode = runPskCommand(process.argv.slice(2), {
    stdout: bytes => process.stdout.write(bytes),
    stderr: text => process.stderr.write(text),
  })
}
