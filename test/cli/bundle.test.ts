import { mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { BUNDLE_INPUTS, type BundleInput, bundleIsFresh } from '../../src/cli/bundle.ts'

describe('the bundle of the conclave command, in a checkout', () => {
  const dirs: string[] = []
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
  })

  /** A bundle directory built from two source files, as `scripts/build-cli-bundle.ts` leaves it. */
  function built(): { bundle: URL; sources: string[] } {
    const root = mkdtempSync(join(tmpdir(), 'conclave-bundle-'))
    dirs.push(root)
    const sources = [join(root, 'a.ts'), join(root, 'b.js')]
    writeFileSync(sources[0], 'export const a = 1\n')
    writeFileSync(sources[1], 'export const b = 2\n')
    const dir = join(root, 'bundle')
    mkdirSync(dir)
    writeFileSync(join(dir, 'main.js'), 'export {}\n')
    const inputs: BundleInput[] = sources.map(path => {
      const stat = statSync(path)
      return { path, size: stat.size, mtimeMs: stat.mtimeMs }
    })
    writeFileSync(join(dir, BUNDLE_INPUTS), JSON.stringify(inputs))
    return { bundle: pathToFileURL(`${dir}/`), sources }
  }

  it('is run while every file it was built from is as it was', () => {
    const { bundle } = built()
    expect(bundleIsFresh(bundle)).toBe(true)
  })

  it('is stale once a source is edited, touched, or gone', () => {
    const edited = built()
    writeFileSync(edited.sources[0], 'export const a = 10\n')
    expect(bundleIsFresh(edited.bundle)).toBe(false)

    // Same size, new mtime: a checkout of another version of the file, or an edit and an undo.
    const touched = built()
    const later = new Date(statSync(touched.sources[1]).mtimeMs + 5_000)
    utimesSync(touched.sources[1], later, later)
    expect(bundleIsFresh(touched.bundle)).toBe(false)

    const removed = built()
    rmSync(removed.sources[0])
    expect(bundleIsFresh(removed.bundle)).toBe(false)
  })

  it('is stale without its list of inputs or its entry, or with a list that is not one', () => {
    const noList = built()
    rmSync(new URL(BUNDLE_INPUTS, noList.bundle))
    expect(bundleIsFresh(noList.bundle)).toBe(false)

    const noEntry = built()
    rmSync(new URL('main.js', noEntry.bundle))
    expect(bundleIsFresh(noEntry.bundle)).toBe(false)

    for (const list of ['not json', '{}', '[]']) {
      const bad = built()
      writeFileSync(new URL(BUNDLE_INPUTS, bad.bundle), list)
      expect(bundleIsFresh(bad.bundle), list).toBe(false)
    }
  })
})
