/**
 * The contract in the repository: `API.md` is the copy of `../shared/API.md` (the contract programs outside the
 * repository are written against), and every name the contract lists as exported from the package root is.
 */

import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import ts from 'typescript'
import { describe, expect, test } from 'vitest'
import * as root from '../src/index.ts'

const repo = resolve(import.meta.dirname, '..')
const copy = resolve(repo, 'API.md')
// The shared contract lives beside the clone (CI checks it out there); CONCLAVE_CONTRACT points elsewhere.
const shared = process.env.CONCLAVE_CONTRACT ?? resolve(repo, '../shared/API.md')
const sharedFound = existsSync(shared)

/**
 * Names of the contract that no code exports yet, each with the issue that adds it. The test fails when one
 * of these becomes exported (take it off the list: the list only shrinks) and when a name not on the list is
 * missing (an export was lost). Issue 16 (replica and standby agents) adds fields, not names:
 * `AgentInfo.replica`, `AgentInfo.spiffeId`, `ClusterConfig.standbys`.
 */
// Names of the contract not exported yet, each with the issue that adds it; the list can only shrink.
const KNOWN_MISSING: Record<string, string> = {}

interface ContractNames {
  functions: string[]
  types: string[]
  errors: string[]
}

/** The names the contract declares: `function`, `interface` and `type` in its code blocks, and its errors. */
function contractNames(text: string): ContractNames {
  const code = [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map(match => match[1]).join('\n')
  const prose = text.replace(/```ts\n[\s\S]*?```/g, '')
  const unique = (names: Iterable<string>) => [...new Set(names)].sort()
  return {
    functions: unique([...code.matchAll(/^\s*function\s+(\w+)/gm)].map(m => m[1])),
    types: unique([...code.matchAll(/^\s*(?:interface|type)\s+(\w+)/gm)].map(m => m[1])),
    errors: unique([...prose.matchAll(/`(\w+Error)`/g)].map(m => m[1])),
  }
}

function source(path: string): string {
  return readFileSync(resolve(repo, path), 'utf8')
}

/**
 * The type names `src/index.ts` exports: its own `export { ... }` / `export type { ... }` lists, and every
 * declaration exported by a module it re-exports whole (`export type * from './api.ts'`).
 */
function exportedTypeNames(): Set<string> {
  const index = source('src/index.ts')
  const names = new Set<string>()
  for (const [, list] of index.matchAll(/export\s+(?:type\s+)?\{([^}]*)\}/g)) {
    for (const item of list.split(',')) {
      const words = item
        .trim()
        .replace(/^type\s+/, '')
        .split(/\s+as\s+/)
      const name = (words[1] ?? words[0]).trim()
      if (name !== '') names.add(name)
    }
  }
  for (const [, module] of index.matchAll(/export\s+(?:type\s+)?\*\s+from\s+'\.\/([^']+)'/g)) {
    const text = source(`src/${module}`)
    for (const [, name] of text.matchAll(
      /^export\s+(?:declare\s+)?(?:interface|type|class|function|const)\s+(\w+)/gm,
    )) {
      names.add(name)
    }
  }
  return names
}

const runtime = root as Record<string, unknown>

describe('the API contract (API.md)', () => {
  test('API.md is the same as ../shared/API.md', ctx => {
    if (!sharedFound) {
      // In CI the shared contract is checked out beside the clone: there its absence is a failure.
      if (process.env.CI) throw new Error(`The shared contract is missing: ${shared}`)
      ctx.skip(`no shared contract at ${shared} (an installed copy); set CONCLAVE_CONTRACT to check one`)
    }
    expect(readFileSync(copy, 'utf8'), 'API.md differs from ../shared/API.md: copy it over').toBe(
      readFileSync(shared, 'utf8'),
    )
  })

  const names = contractNames(readFileSync(copy, 'utf8'))

  test('the contract is read: its functions, types and errors are found', () => {
    // Guards the parsing itself: a reformatted API.md must not make the checks below vacuous.
    expect(names.functions).toEqual(['conclave', 'createAgent'])
    expect(names.types).toContain('Agent')
    expect(names.types).toContain('TaskEvent')
    expect(names.types.length).toBeGreaterThan(25)
    expect(names.errors).toContain('InvalidArgumentError')
    expect(names.errors).toContain('ConflictError')
  })

  test('every function and error class of the contract is exported from the root', () => {
    const missing = [...names.functions, ...names.errors].filter(name => typeof runtime[name] !== 'function')
    expect(
      missing.filter(name => !(name in KNOWN_MISSING)),
      'functions and errors of API.md that src/index.ts does not export',
    ).toEqual([])
    for (const name of names.errors.filter(name => !(name in KNOWN_MISSING))) {
      const error = new (runtime[name] as new (message: string) => Error)('x')
      expect(error, name).toBeInstanceOf(Error)
      expect(error.name, name).toBe(name)
    }
  })

  test('every interface and type of the contract is exported from the root', () => {
    const exported = exportedTypeNames()
    expect(exported.has('Agent'), 'the scan of src/index.ts finds the api.ts types').toBe(true)
    const missing = names.types.filter(name => !exported.has(name))
    expect(
      missing.filter(name => !(name in KNOWN_MISSING)),
      'interfaces and types of API.md that src/index.ts does not export',
    ).toEqual([])
  })

  test('the known-missing list only holds names still missing (remove a name once it is exported)', () => {
    const exported = exportedTypeNames()
    const present = Object.keys(KNOWN_MISSING).filter(
      name => exported.has(name) || typeof runtime[name] === 'function',
    )
    expect(present, 'exported now: take them off KNOWN_MISSING').toEqual([])
    const all = new Set([...names.functions, ...names.types, ...names.errors])
    expect(
      Object.keys(KNOWN_MISSING).filter(name => !all.has(name)),
      'KNOWN_MISSING names that API.md does not declare',
    ).toEqual([])
  })
})

/** `interface.member` (or the declaration's name) for every declaration and member of `file` without TSDoc. */
function undocumented(file: string): { names: string[]; total: number } {
  const text = source(file)
  const sourceFile = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
  const names: string[] = []
  let total = 0
  const check = (node: ts.Node, name: string): void => {
    total++
    if (ts.getJSDocCommentsAndTags(node).length === 0) names.push(name)
  }
  sourceFile.forEachChild(node => {
    if (!ts.isInterfaceDeclaration(node) && !ts.isTypeAliasDeclaration(node)) return
    check(node, node.name.text)
    if (!ts.isInterfaceDeclaration(node)) return
    for (const member of node.members) check(member, `${node.name.text}.${member.name?.getText(sourceFile)}`)
  })
  return { names, total }
}

/** The first `@example` code block of `src/index.ts`'s package documentation, without the comment's stars. */
function packageExample(): string {
  const doc = /\/\*\*([\s\S]*?)\*\//.exec(source('src/index.ts'))?.[1] ?? ''
  const lines = doc.split('\n').map(line => line.replace(/^\s*\* ?/, ''))
  const text = lines.join('\n')
  return /@example\s*```typescript\n([\s\S]*?)```/.exec(text)?.[1] ?? ''
}

const run = promisify(execFile)

describe('the API documentation', () => {
  test('every declaration and member of src/api.ts has TSDoc', () => {
    const { names, total } = undocumented('src/api.ts')
    expect(total).toBeGreaterThan(100)
    expect(names, 'members of src/api.ts without a /** */ comment').toEqual([])
  })

  test('src/index.ts has a @packageDocumentation block whose example runs as printed', async () => {
    expect(source('src/index.ts')).toMatch(/^\/\*\*\n \* @packageDocumentation\n/)
    const example = packageExample()
    expect(example).toContain("from 'conclave'")
    const dir = mkdtempSync(join(tmpdir(), 'conclave-doc-'))
    try {
      const file = join(dir, 'example.ts')
      writeFileSync(file, example.replace("from 'conclave'", `from '${resolve(repo, 'src/index.ts')}'`))
      const { stdout } = await run(process.execPath, [file], { cwd: dir, timeout: 60_000 })
      expect(stdout).toContain("{ name: 'llama' }")
      expect(stdout).toMatch(/^\d+n$/m)
      expect(stdout).toContain('completed')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
