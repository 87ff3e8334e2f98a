/**
 * `node:http`, loaded when a server starts. A static `import ... from 'node:http'` builds the ESM facade of
 * every export, which loads Node's bundled undici (for `http.WebSocket`): about 14 MiB of RSS in every agent
 * process, most of which serve no HTTP at all. The CommonJS module from `process.getBuiltinModule` has the
 * same `createServer` without that.
 */
export function httpModule(): typeof import('node:http') {
  return process.getBuiltinModule('node:http')
}
