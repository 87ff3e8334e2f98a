import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

/**
 * The package as users get it: `npm pack` on this checkout (its `prepack` builds dist/), the tarball
 * installed into an empty project with only its production dependencies, then imported on Node 24 and run
 * as `npx conclave`. The install takes the versions of this project's lock from npm's cache (which
 * `npm ci` filled), falling back to the registry for anything missing.
 */

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
// Node 24 (the one running the tests) first on the PATH, for npm, npx and the package's scripts alike.
const ENV = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}` }
const MINUTE = 60_000

interface LockEntry {
  version?: string
  resolved?: string
  dev?: boolean
  link?: boolean
  name?: string
}

/**
 * A lock for a project that depends on the tarball only: the tarball's entry, and this project's lock
 * entries minus its devDependencies. A devDependency the package needs at run time is then missing, as it
 * would be for users.
 */
function consumerLock(tarball: string): object {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockEntry>
  }
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>
  const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`
  const dependencies = { conclave: `file:${tarball}` }
  const packages: Record<string, object> = {
    '': { name: 'uses-conclave', dependencies },
    'node_modules/conclave': {
      version: manifest.version,
      resolved: `file:${tarball}`,
      integrity,
      dependencies: manifest.dependencies,
      bin: manifest.bin,
      engines: manifest.engines,
    },
  }
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || entry.dev === true || entry.link === true) continue
    // This project's lock leaves out the registry URLs; without one npm would ask the registry first.
    const name = entry.name ?? path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)
    const file = `${name.slice(name.lastIndexOf('/') + 1)}-${entry.version}.tgz`
    packages[path] = { resolved: `https://registry.npmjs.org/${name}/-/${file}`, ...entry }
  }
  return { name: 'uses-conclave', lockfileVersion: 3, requires: true, packages }
}

describe('the npm package', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conclave-package-'))
  const project = join(dir, 'project')
  let files: string[] = []
  const timings: Record<string, number> = {}

  beforeAll(async () => {
    let started = performance.now()
    const packed = await run('npm', ['pack', '--pack-destination', dir, '--silent'], {
      cwd: ROOT,
      env: ENV,
      timeout: 2 * MINUTE,
    })
    timings.pack = performance.now() - started
    const tarball = join(dir, packed.stdout.trim().split('\n').at(-1)!)
    files = (await run('tar', ['-tzf', tarball])).stdout.split('\n').filter(line => line !== '')

    started = performance.now()
    await run('mkdir', [project])
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({
        name: 'uses-conclave',
        private: true,
        type: 'module',
        dependencies: { conclave: `file:${tarball}` },
      }),
    )
    writeFileSync(join(project, 'package-lock.json'), JSON.stringify(consumerLock(tarball)))
    await run('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'], {
      cwd: project,
      env: ENV,
      timeout: 2 * MINUTE,
    })
    timings.install = performance.now() - started
  }, 4 * MINUTE)

  afterAll(() => {
    console.log(
      `package test: ${JSON.stringify(Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])))} ms`,
    )
    rmSync(dir, { recursive: true, force: true })
  })

  it('packs the compiled code, the license and the docs the README links to', () => {
    const packed = new Set(files.map(file => file.replace(/^package\//, '')))
    for (const file of [
      'package.json',
      'README.md',
      'LICENSE',
      'bin/conclave.js',
      'dist/src/index.js',
      'dist/src/index.d.ts',
      'dist/src/cli/main.js',
      'docs/membership.md',
      'docs/security.md',
    ]) {
      expect(packed.has(file), file).toBe(true)
    }
    expect([...packed].filter(file => file.startsWith('test/'))).toEqual([])
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    for (const [, link] of readme.matchAll(/\]\((docs\/[^)#]+)/g)) expect(packed.has(link), link).toBe(true)
  })

  it('imports on Node 24, runs an agent on TCP and on the memory transport, writes and reads a key', async () => {
    const started = performance.now()
    writeFileSync(
      join(project, 'use.mjs'),
      [
        "import { createAgent, InvalidArgumentError, StorageLockedError } from 'conclave'",
        'for (const transport of ["tcp", "memory"]) {',
        '  const agent = await createAgent({ transport })',
        '  await agent.join({})',
        "  const { revision } = await agent.consensus.propose('greeting', { hello: transport })",
        "  const value = await agent.consensus.get('greeting')",
        '  console.log(JSON.stringify({ transport, revision, value, addrs: agent.multiaddrs() }))',
        '  await agent.stop()',
        '}',
        'const refused = await createAgent({ tickMs: -1 }).catch(err => err)',
        'console.log(JSON.stringify({ refused: refused instanceof InvalidArgumentError, code: refused.code }))',
        'console.log(JSON.stringify({ storageLocked: typeof StorageLockedError }))',
      ].join('\n'),
    )
    const { stdout } = await run(process.execPath, ['use.mjs'], { cwd: project, env: ENV, timeout: MINUTE })
    timings.run = performance.now() - started
    const [tcp, memory, refused, exported] = stdout
      .trim()
      .split('\n')
      .map(line => JSON.parse(line) as Record<string, unknown>)
    expect(tcp).toMatchObject({ transport: 'tcp', value: { hello: 'tcp' } })
    expect((tcp.addrs as string[])[0]).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//)
    expect(memory).toMatchObject({ transport: 'memory', value: { hello: 'memory' } })
    expect(refused).toEqual({ refused: true, code: 'ERR_INVALID_ARGUMENT' })
    expect(exported).toEqual({ storageLocked: 'function' })
  })

  it('type-checks a program that uses the exported option types and errors', async () => {
    writeFileSync(
      join(project, 'typed.ts'),
      [
        "import { type AgentOptions, type MembershipTiming, type RaftOptions, type RateLimits, StorageFormatError, createAgent } from 'conclave'",
        "const membership: MembershipTiming = { preset: 'lan', probeInterval: 2000 }",
        'const raft: Partial<RaftOptions> = { preVote: true }',
        'const rateLimits: RateLimits = { requests: { perSecond: 100 } }',
        'const options: AgentOptions = { membership, raft, rateLimits }',
        'export const start = () => createAgent(options).catch((err: unknown) => err instanceof StorageFormatError)',
      ].join('\n'),
    )
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc')
    const args = [
      '--noEmit',
      '--strict',
      '--module',
      'nodenext',
      '--target',
      'es2024',
      '--skipLibCheck',
      'typed.ts',
    ]
    const result = await run(process.execPath, [tsc, ...args], { cwd: project, env: ENV }).catch(
      (err: { stdout: string }) => err,
    )
    expect(result.stdout).toBe('')
  })

  it('runs as npx conclave', async () => {
    const started = performance.now()
    const help = await run('npx', ['--offline', 'conclave', '--help'], { cwd: project, env: ENV })
    expect(help.stdout).toMatch(/^Usage: conclave <command>/)
    expect(help.stdout).toMatch(/\bpsk\b/)
    const version = await run('npx', ['--offline', 'conclave', '--version'], { cwd: project, env: ENV })
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
    expect(version.stdout.trim()).toBe(manifest.version)
    // The installed command itself (what npx runs), without npx's own start-up again.
    const bin = join(project, 'node_modules/.bin/conclave')
    const psk = await run(process.execPath, [bin, 'psk'], { cwd: project, env: ENV })
    expect(psk.stdout).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/)
    timings.npx = performance.now() - started
  })
})
