import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadPsk, parsePsk } from '../../src/net/pnet.ts'
import { cli } from './helpers.ts'

describe('conclave psk', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conclave-psk-cli-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('writes a new key file, private to its owner, and will not overwrite one without --force', async () => {
    const file = join(dir, 'swarm.key')
    const written = await cli(['psk', file])
    expect(written.code).toBe(0)
    expect(written.stderr).toMatch(/wrote a new pre-shared key/)
    const first = loadPsk(file)
    expect(statSync(file).mode & 0o777).toBe(0o600)

    const refused = await cli(['psk', file])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/exists; pass --force/)
    expect(loadPsk(file)).toEqual(first)

    expect((await cli(['psk', file, '--force'])).code).toBe(0)
    expect(loadPsk(file)).not.toEqual(first)
  })

  it('prints a key without a file, and takes one file at most', async () => {
    const printed = await cli(['psk'])
    expect(printed.code).toBe(0)
    const key = new TextEncoder().encode(printed.stdout)
    expect(parsePsk(key)).toEqual(key)
    const twice = await cli(['psk', join(dir, 'a'), join(dir, 'b')])
    expect(twice.code).toBe(2)
    expect(twice.stderr.trim().split('\n')).toHaveLength(1)
    expect(() => readFileSync(join(dir, 'a'))).toThrow()
  })
})
