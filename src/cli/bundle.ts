/**
 * The `conclave` command's bundle (`npm run build:bundle`, `scripts/build-cli-bundle.ts`): the same code as
 * `src/cli/main.ts` and everything it loads, in a few dozen chunks instead of about 840 modules, so an agent
 * process starts on about half the CPU and holds ~40 MiB less RSS. `bin/conclave.js` runs it when it
 * is there: always in an installed package (built at pack time), and in a checkout only while it is fresh.
 */
import { readFileSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** Where the bundle is written, from the package root; three levels down, like `dist/src/cli`. */
export const BUNDLE_DIR = 'dist/bundle/cli'

/** The benchmarks' agent process, bundled the same way (`npm run build:bundle -- --agent-host`). */
export const AGENT_HOST_BUNDLE_DIR = 'dist/bundle/agent-host'

/** The file, in the bundle's directory, listing what the bundle was built from. */
export const BUNDLE_INPUTS = 'inputs.json'

/** A file the bundle was built from, as it was then. */
export interface BundleInput {
  path: string
  size: number
  mtimeMs: number
}

/**
 * Whether the bundle in `dir` (a directory URL; `entry`, its entry file) was built from the files as they
 * are now: every file it lists has the size and mtime it had at the build. An edit to a source file, a
 * checkout or an `npm install` changing a dependency makes it stale; a missing or unreadable list too.
 */
export function bundleIsFresh(dir: URL, entry = 'main.js'): boolean {
  let inputs: BundleInput[]
  try {
    inputs = JSON.parse(readFileSync(new URL(BUNDLE_INPUTS, dir), 'utf8')) as BundleInput[]
  } catch {
    return false
  }
  if (!Array.isArray(inputs) || inputs.length === 0) return false
  try {
    if (!statSync(fileURLToPath(new URL(entry, dir))).isFile()) return false
    return inputs.every(input => {
      const stat = statSync(input.path, { throwIfNoEntry: false })
      return stat !== undefined && stat.size === input.size && stat.mtimeMs === input.mtimeMs
    })
  } catch {
    return false
  }
}
