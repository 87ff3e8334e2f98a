/**
 * The `conclave` command's entry: runs the command line and exits with its status. Exiting explicitly
 * matters: a libp2p node may leave timers behind that would otherwise keep the process alive.
 */
import { execWithAgentHeap } from './agent-heap.ts'

// `conclave agent` starts again with its young generation sized (`./agent-heap.ts`), before the command
// line loads libp2p: hence the dynamic import below.
execWithAgentHeap(process.argv.slice(2))
const { runCli } = await import('./cli.ts')
const status = await runCli(process.argv.slice(2))
// Writes to a pipe are asynchronous: exiting at once would cut a large answer (`kv get` of a 600 kB value).
process.stdout.write('', () => process.exit(status))
