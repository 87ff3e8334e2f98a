import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** One static file of the page. */
export interface Asset {
  type: string
  body: Buffer
}

const FILES: Record<string, string> = {
  '/index.html': 'text/html; charset=utf-8',
  '/dashboard.css': 'text/css; charset=utf-8',
  '/dashboard.js': 'text/javascript; charset=utf-8',
  '/favicon.svg': 'image/svg+xml',
}

/**
 * The page's files, shipped in the package (`src/http/assets`), read once. Run from `src` they sit next to
 * this module; run from the build (`dist/src/http`), the compiler did not copy them, so they are read from
 * the package's `src` (which `files` in package.json ships).
 */
export function loadAssets(): Map<string, Asset> {
  const candidates = [
    new URL('./assets/', import.meta.url),
    new URL('../../../src/http/assets/', import.meta.url),
  ]
  const directory = candidates.find(url => existsSync(fileURLToPath(new URL('index.html', url))))
  if (directory === undefined) {
    throw new Error(
      `dashboard assets not found (looked in ${candidates.map(url => fileURLToPath(url)).join(', ')})`,
    )
  }
  const assets = new Map<string, Asset>()
  for (const [path, type] of Object.entries(FILES)) {
    assets.set(path, { type, body: readFileSync(new URL(path.slice(1), directory)) })
  }
  return assets
}
