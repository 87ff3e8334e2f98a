#!/usr/bin/env node
// The `conclave` command. In this repository Node (>= 24) runs the TypeScript sources directly; Node does
// not strip types under node_modules, so an installed package runs the compiled JavaScript in dist/.
import { existsSync } from 'node:fs'
import module from 'node:module'

// Every command loads libp2p; caching the compiled code roughly halves the start-up time.
module.enableCompileCache?.()

const compiled = new URL('../dist/src/cli/main.js', import.meta.url)
const installed = import.meta.url.includes('/node_modules/')
await import(installed && existsSync(compiled) ? compiled.href : '../src/cli/main.ts')
