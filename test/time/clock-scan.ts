/**
 * Finds clock reads and timers in TypeScript source, by its syntax tree (comments and strings never match):
 * what `no-clock.test.ts` forbids outside the production scheduler.
 */

import ts from 'typescript'

export interface ClockUse {
  line: number
  what: string
}

/** Globals that start or stop a timer, or read a clock, when referred to at all. */
const TIMER_GLOBALS = new Set([
  'setTimeout',
  'setInterval',
  'setImmediate',
  'clearTimeout',
  'clearInterval',
  'clearImmediate',
])

/** `object.member` reads of a clock or a timer. */
const CLOCK_MEMBERS: Record<string, ReadonlySet<string>> = {
  Date: new Set(['now']),
  performance: new Set(['now', 'timeOrigin']),
  process: new Set(['hrtime', 'uptime']),
  AbortSignal: new Set(['timeout']),
  globalThis: TIMER_GLOBALS,
}

/** Modules whose imports are Node's timers or clocks. */
const CLOCK_MODULES = new Set([
  'timers',
  'node:timers',
  'timers/promises',
  'node:timers/promises',
  'perf_hooks',
  'node:perf_hooks',
])

export function findClockUses(fileName: string, text: string): ClockUse[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  const uses: ClockUse[] = []
  const add = (node: ts.Node, what: string): void => {
    uses.push({ line: source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1, what })
  }
  const visit = (node: ts.Node): void => {
    if (ts.isPropertyAccessExpression(node) && ts.isIdentifier(node.expression)) {
      const members = CLOCK_MEMBERS[node.expression.text]
      if (members?.has(node.name.text)) add(node, `${node.expression.text}.${node.name.text}`)
    } else if (ts.isIdentifier(node) && TIMER_GLOBALS.has(node.text) && refersToGlobal(node)) {
      add(node, node.text)
    } else if ((ts.isNewExpression(node) || ts.isCallExpression(node)) && isDate(node.expression)) {
      // `new Date()` and `Date()` read the clock; `new Date(ms)` only converts.
      if ((node.arguments?.length ?? 0) === 0) add(node, ts.isNewExpression(node) ? 'new Date()' : 'Date()')
    } else if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier !== undefined &&
      ts.isStringLiteral(node.moduleSpecifier) &&
      CLOCK_MODULES.has(node.moduleSpecifier.text)
    ) {
      add(node, `import from ${node.moduleSpecifier.text}`)
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments.length > 0 &&
      ts.isStringLiteral(node.arguments[0]) &&
      CLOCK_MODULES.has(node.arguments[0].text)
    ) {
      add(node, `import(${node.arguments[0].text})`)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return uses
}

function isDate(expression: ts.Expression): boolean {
  return ts.isIdentifier(expression) && expression.text === 'Date'
}

/** An identifier that names the global, not a property, a declaration's own name or an import's alias. */
function refersToGlobal(node: ts.Identifier): boolean {
  const parent = node.parent
  // `import { setTimeout } from 'node:timers'`: the import itself is reported.
  if (ts.isImportSpecifier(parent) || ts.isExportSpecifier(parent)) return false
  if (ts.isPropertyAccessExpression(parent) && parent.name === node) return false
  if (
    (ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent) || ts.isMethodDeclaration(parent)) &&
    parent.name === node
  )
    return false
  if (ts.isPropertySignature(parent) || ts.isMethodSignature(parent)) return parent.name !== node
  return true
}

/** Whether the file imports the production scheduler (to default to it rather than take one). */
export function importsSystemScheduler(fileName: string, text: string): boolean {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  return source.statements.some(
    statement =>
      (ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement)) &&
      statement.moduleSpecifier !== undefined &&
      ts.isStringLiteral(statement.moduleSpecifier) &&
      (statement.moduleSpecifier.text.endsWith('/system-scheduler.ts') ||
        /\bsystemScheduler\b/.test(statement.getText(source))),
  )
}
