/**
 * The young-generation size a `conclave agent` process runs with. V8 sizes the young generation from the
 * machine's memory: up to 64 MiB per semi-space on a 24 GiB machine, and an agent's steady trickle of small
 * messages grows it to that size and keeps its pages touched, about 25 MiB of RSS per agent that holds
 * nothing. 4 MiB semi-spaces keep an idle agent at about 120 MiB of RSS instead of 140-150 (10 agents as
 * processes, `npm run bench:member-cost`), for more frequent, shorter scavenges under write load: 64
 * concurrent writes from a follower of 3 agents took the same CPU per write with either sizing.
 *
 * Node takes the size only at start-up, so `conclave agent` replaces its own process (`process.execve`,
 * same pid, same arguments) with one started with the flag, before it loads anything. A flag of the
 * user's own (on the command line or in `NODE_OPTIONS`) is kept: `NODE_OPTIONS=--max-semi-space-size=64`
 * gives the leader of a write-heavy cluster V8's own sizing back.
 */

/** The semi-space size, in MiB, `conclave agent` and the benchmark's agent processes run with. */
export const AGENT_MAX_SEMI_SPACE_MIB = 4

/** The V8 flags that size the young generation: any of them, set by the user, is left alone. */
const YOUNG_GENERATION_FLAGS = [
  '--max-semi-space-size',
  '--min-semi-space-size',
  '--semi-space-growth-factor',
  '--max-heap-size',
]

/** Whether a set of Node flags (`process.execArgv`, or `NODE_OPTIONS` split on spaces) sizes the young generation. */
export function sizesYoungGeneration(flags: readonly string[]): boolean {
  return flags.some(flag => {
    // V8 reads `--max_semi_space_size` as `--max-semi-space-size`.
    const normal = flag.replaceAll('_', '-')
    return YOUNG_GENERATION_FLAGS.some(name => normal === name || normal.startsWith(`${name}=`))
  })
}

/**
 * The Node flags to start `conclave <args>` again with, or undefined when it should go on as it is: only
 * the `agent` command is sized, and only when neither `execArgv` nor `nodeOptions` sizes it already.
 */
export function agentHeapFlags(
  args: readonly string[],
  execArgv: readonly string[],
  nodeOptions = '',
): string[] | undefined {
  if (args[0] !== 'agent') return undefined
  if (sizesYoungGeneration(execArgv) || sizesYoungGeneration(nodeOptions.split(/\s+/))) return undefined
  return [`--max-semi-space-size=${AGENT_MAX_SEMI_SPACE_MIB}`]
}

/**
 * Replaces this process with one whose young generation is sized for an agent, when `agentHeapFlags` says
 * so and the platform can (`process.execve`: Node >= 23.11 on POSIX); otherwise returns and the command runs
 * with V8's sizing. Call it before loading anything large: nothing of this process survives.
 */
export function execWithAgentHeap(args: readonly string[]): void {
  const flags = agentHeapFlags(args, process.execArgv, process.env.NODE_OPTIONS)
  if (flags === undefined || typeof process.execve !== 'function') return
  process.execve(process.execPath, [
    process.execPath,
    ...process.execArgv,
    ...flags,
    ...process.argv.slice(1),
  ])
}
