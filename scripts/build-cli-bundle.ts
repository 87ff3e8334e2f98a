/**
 * `npm run build:bundle`: the `conclave` command as one bundle (`dist/bundle/cli/`), which `bin/conclave.js`
 * runs instead of the sources when it is there and fresh (`src/cli/bundle.ts`).
 *
 * Why: an agent process loads about 840 modules (libp2p and its dependencies, conclave's own). Node resolves,
 * reads and links each one, and keeps per-module structures for the life of the process: half of an agent's
 * start-up CPU (`conclave agent`, 1.5-1.8 CPU-seconds to "joined" on the 2-core test machine) and tens of MiB
 * of every agent's memory were that. Bundled, the same code loads as a few dozen chunks: each command group
 * (and each part loaded only on use: the dashboard, metrics, `@libp2p/memory`) stays a chunk of its own,
 * loaded when its `import()` runs, as in the sources.
 *
 * Behaviour is the sources': class and function names are kept (errors are told apart by name), modules run in
 * the sources' order, nothing is minified. `inputs.json` lists every file bundled with its size and mtime, so
 * an edit to any of them (or an `npm install` that changes a dependency) makes the bundle stale, and the
 * command runs from the sources again until the next build.
 */
import { rmSync, statSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { build } from 'rolldown'
import { BUNDLE_DIR, BUNDLE_INPUTS, type BundleInput } from '../src/cli/bundle.ts'

const root = new URL('../', import.meta.url)
const dir = fileURLToPath(new URL(BUNDLE_DIR, root))

async function main(): Promise<void> {
  const started = performance.now()
  rmSync(dir, { recursive: true, force: true })
  const output = await build({
    input: fileURLToPath(new URL('src/cli/main.ts', root)),
    platform: 'node',
    // Node's own modules stay imports; every package is bundled, but for the Prometheus packages, which
    // `src/metrics/prometheus.ts` loads with `require` when metrics are asked for (dependencies of the package).
    external: [/^node:/],
    logLevel: 'warn',
    output: {
      dir,
      format: 'esm',
      entryFileNames: 'main.js',
      chunkFileNames: '[name]-[hash].js',
      keepNames: true,
      strictExecutionOrder: true,
      // Comments are no code: an agent keeps every module's source text in memory for the life of the process.
      comments: false,
      // One non-Latin-1 character would make V8 hold the whole chunk's source as two bytes a character.
      charset: 'ascii',
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
  writeFileSync(new URL(BUNDLE_INPUTS, new URL(`${BUNDLE_DIR}/`, root)), `${JSON.stringify(inputs)}\n`)
  const chunks = output.output.filter(chunk => chunk.type === 'chunk').length
  console.log(
    `bundled ${inputs.length} files into ${chunks} chunks in ${dir} (${((performance.now() - started) / 1000).toFixed(1)} s)`,
  )
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
