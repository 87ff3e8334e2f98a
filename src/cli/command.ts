import type { CommandSpec, ParsedArgs } from './args.ts'

/** One `conclave ...` command: its spec (for parsing and `--help`) and what it does; resolves to the exit status. */
export interface CliCommand {
  spec: CommandSpec
  run(args: ParsedArgs): Promise<number>
}
