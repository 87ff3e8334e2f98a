/**
 * `npm run build:bundle`: the `conclave` command as one bundle (`dist/bundle/cli/`), which `bin/conclave.js`
 * runs instead of the sources when it is there and fresh (`src/cli/bundle.ts`). With `--agent-host`, also the
 * benchmarks' agent process (`scripts/agent-host.ts`) in `dist/bundle/agent-host/`, which `AgentHost` runs
 * when `CONCLAVE_AGENT_BUNDLE=1` (`scripts/lib/hosts.ts`): agents started as `conclave agent` starts them.
 *
 * Why: an agent process loads about 840 modules (libp2p and its dependencies, conclave's own). Node resolves,
 * reads and links each one, and keeps per-module structures for the life of the process: half of an agent's
 * start-up CPU (`conclave agent`, 1.5-1.8 CPU-seconds to "joined" on the 2-core test machine) and tens of MiB
 * of every agent's memory were that. Bundled, the same code loads as a few dozen chunks: each command group
 * (and each part loaded only on use: the dashboard, metrics, `@libp2p/memory`) stays a chunk of its own,
 * loaded when its `import()` runs, as in the sources.
 *
 * Behaviour is the sources': class and function names are kept (errors are told apart by name), modules run in
 * the sources' order, nothing is renamed or rewritten: only comments and whitespace are left out. `inputs.json` lists every file bundled with its size and mtime, so
 * an edit to any of them (or an `npm install` that changes a dependency) makes the bundle stale, and the
 * command runs from the sources again until the next build.
 */
import { rmSync, statSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { build } from 'rolldown'
import { AGENT_HOST_BUNDLE_DIR, BUNDLE_DIR, BUNDLE_INPUTS, type BundleInput } from '../src/cli/bundle.ts'

const root = new URL('../', import.meta.url)

/** Bundles `entry` (from the package root) into `bundleDir` as `<entryName>.js` and its chunks. */
async function bundle(entry: string, entryName: string, bundleDir: string): Promise<void> {
  const started = performance.now()
  const dir = fileURLToPath(new URL(bundleDir, root))
  rmSync(dir, { recursive: true, force: true })
  const output = await build({
    input: fileURLToPath(new URL(entry, root)),
    platform: 'node',
    // Node's own modules stay imports; every package is bundled, but for the Prometheus packages, which
    // `src/metrics/prometheus.ts` loads with `require` when metrics are asked for (dependencies of the package).
    external: [/^node:/],
    logLevel: 'warn',
    output: {
      dir,
      format: 'esm',
      entryFileNames: `${entryName}.js`,
      chunkFileNames: '[name]-[hash].js',
      keepNames: true,
      strictExecutionOrder: true,
      // Comments and whitespace are no code, and an agent keeps every module's source text in memory for the
      // life of the process (V8 compiles functions lazily, from it): 2.5 MB of text with them, 1.9 without.
      comments: false,
      // One non-Latin-1 character would make V8 hold the whole chunk's source as two bytes a character.
      charset: 'ascii',
      minify: { compress: false, mangle: false, codegen: { removeWhitespace: true } },
    },
  })
  const files = new Set<string>()
  for (const chunk of output.output) {
    if (chunk.type !== 'chunk') continue
    for (const id of chunk.moduleIds) if (id.startsWith('/')) files.add(id.split('?')[0])
  }
  const inputs: BundleInput[] = [...files].sort().map(path => {
    const stat = statSync(path)
    return { path, size: stat.size, mtimeMs: stat.mtimeMs }
  })
  writeFileSync(new URL(BUNDLE_INPUTS, new URL(`${bundleDir}/`, root)), `${JSON.stringify(inputs)}\n`)
  const chunks = output.output.filter(chunk => chunk.type === 'chunk').length
  console.log(
    `bundled ${inputs.length} files into ${chunks} chunks in ${dir} (${((performance.now() - started) / 1000).toFixed(1)} s)`,
  )
}

async function main(): Promise<void> {
  await bundle('src/cli/main.ts', 'main', BUNDLE_DIR)
  if (process.argv.includes('--agent-host'))
    await bundle('scripts/agent-host.ts', 'agent-host', AGENT_HOST_BUNDLE_DIR)
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
