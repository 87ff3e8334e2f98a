#!/usr/bin/env node
// The `conclave` command. In this repository Node (>= 24) runs the TypeScript sources directly; Node does
// not strip types under node_modules, so an installed package runs the compiled JavaScript in dist/.
// Either runs the bundle of the command instead when there is one (`npm run build:bundle`,
// src/cli/bundle.ts): an agent process then starts on about half the CPU and holds ~40 MiB less. In a
// checkout, only a fresh bundle is run: one built from the sources and dependencies as they are now.
import { existsSync } from 'node:fs'
import module from 'node:module'

// Every command loads libp2p; caching the compiled code roughly halves the start-up time.
module.enableCompileCache?.()

const bundleDir = new URL('../dist/bundle/cli/', import.meta.url)
const bundle = new URL('main.js', bundleDir)
const compiled = new URL('../dist/src/cli/main.js', import.meta.url)
const installed = import.meta.url.includes('/node_modules/')
let entry = '../src/cli/main.ts'
if (installed) {
  if (existsSync(bundle)) entry = bundle.href
  else if (existsSync(compiled)) entry = compiled.href
} else if (existsSync(bundle)) {
  const { bundleIsFresh } = await import('../src/cli/bundle.ts')
  if (bundleIsFresh(bundleDir)) entry = bundle.href
}
await import(entry)
