/**
 * The `conclave` command's entry: runs the command line and exits with its status. Exiting explicitly
 * matters: a libp2p node may leave timers behind that would otherwise keep the process alive.
 */
import { runCli } from './cli.ts'

process.exit(await runCli(process.argv.slice(2)))
