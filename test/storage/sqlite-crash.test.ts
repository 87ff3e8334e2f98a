import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { StorageLockedError } from '../../src/storage/errors.ts'
import { MemoryRaftStorage } from '../../src/storage/memory-storage.ts'
import type { RaftStorage } from '../../src/storage/raft-storage.ts'
import { SqliteRaftStorage } from '../../src/storage/sqlite-storage.ts'
import {
  applyOperation,
  nextState,
  operationAt,
  stateOf,
  type WorkloadState,
} from './fixtures/crash-workload.ts'

const writerScript = join(import.meta.dirname, 'fixtures', 'crash-writer.ts')
const failingWriterScript = join(import.meta.dirname, 'fixtures', 'failing-writer.ts')

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'conclave-crash-'))
})
afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

interface Run {
  child: ChildProcess
  /** Resolves on the child's `ready` line (it holds the file lock from then on). */
  ready: Promise<void>
  /** Resolves with every acknowledged step once the child has exited. */
  exited: Promise<{ acks: number[]; signal: NodeJS.Signals | null; stderr: string }>
}

function startWriter(path: string, firstStep: number, killAfterAcks: number): Run {
  const child = spawn(process.execPath, [writerScript, path, String(firstStep)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const acks: number[] = []
  let stderr = ''
  let buffered = ''
  let markReady: () => void = () => {}
  const ready = new Promise<void>(resolve => {
    markReady = resolve
  })
  child.stderr?.on('data', chunk => {
    stderr += String(chunk)
  })
  child.stdout?.on('data', chunk => {
    buffered += String(chunk)
    const lines = buffered.split('\n')
    buffered = lines.pop() ?? ''
    for (const line of lines) {
      if (line === 'ready') markReady()
      else if (line.startsWith('ack ')) acks.push(Number(line.slice(4)))
    }
    // Killed while it keeps writing, so the kill lands at an arbitrary point of a write.
    if (acks.length >= killAfterAcks && child.exitCode === null) child.kill('SIGKILL')
  })
  const exited = new Promise<{ acks: number[]; signal: NodeJS.Signals | null; stderr: string }>(resolve => {
    child.on('close', (_code, signal) => resolve({ acks, signal, stderr }))
  })
  return { child, ready, exited }
}

function apply(model: RaftStorage, state: WorkloadState, step: number): WorkloadState {
  const operation = operationAt(step, state)
  applyOperation(model, operation)
  return nextState(state, operation)
}

it('keeps every acknowledged write, and no partial one, across SIGKILLs mid-stream', async () => {
  const path = join(dir, 'raft.sqlite')
  const model = new MemoryRaftStorage()
  let state = stateOf(model.load())
  let nextStep = 0
  const killPoints = [150, 400, 60, 700]
  for (const killAfterAcks of killPoints) {
    const run = startWriter(path, nextStep, killAfterAcks)
    const { acks, signal, stderr } = await run.exited
    expect(stderr).not.toMatch(/Error/)
    expect(signal).toBe('SIGKILL')
    expect(acks.length).toBeGreaterThanOrEqual(killAfterAcks)
    expect(acks).toEqual(acks.map((_, i) => nextStep + i))
    const lastAcked = acks[acks.length - 1]
    for (; nextStep <= lastAcked; nextStep++) state = apply(model, state, nextStep)
    expect(stateOf(model.load())).toEqual(state)

    const recovered = new SqliteRaftStorage(path)
    const onDisk = { state: recovered.load(), step: recovered.getMeta('step') }
    recovered.close()
    const expected = () => ({ state: model.load(), step: model.getMeta('step') })
    // Every acknowledged step is there; the one in flight at the kill is there entirely or not at all.
    if (!isDeepEqual(onDisk, expected())) {
      state = apply(model, state, nextStep)
      nextStep++
      expect(onDisk).toEqual(expected())
    }
  }
  expect(nextStep).toBeGreaterThan(killPoints.reduce((sum, acks) => sum + acks, 0))
})

it('refuses to open a file another process holds', async () => {
  const path = join(dir, 'raft.sqlite')
  const run = startWriter(path, 0, Number.POSITIVE_INFINITY)
  try {
    await run.ready
    expect(() => new SqliteRaftStorage(path)).toThrow(StorageLockedError)
  } finally {
    run.child.kill('SIGKILL')
    await run.exited
  }
  new SqliteRaftStorage(path).close()
})

it('a write that fails on I/O leaves the storage failed, and the disk at the last acknowledged write', async () => {
  const path = join(dir, 'raft.sqlite')
  // A file size limit (1 or 2 MiB, as the shell counts blocks) makes SQLite's own write(2) fail with EFBIG part way through a transaction.
  const child = spawn(
    '/bin/sh',
    ['-c', 'ulimit -f 2048 && exec "$0" "$@"', process.execPath, failingWriterScript, path],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let output = ''
  child.stdout.on('data', chunk => {
    output += String(chunk)
  })
  const code = await new Promise(resolve => child.on('close', resolve))
  expect(code).toBe(0)
  const lines = output.trim().split('\n')
  const acks = lines.filter(line => line.startsWith('ack ')).map(line => Number(line.slice(4)))
  expect(acks.length).toBeGreaterThan(2)
  expect(lines.slice(acks.length)).toEqual([
    'failed StorageFailedError',
    'load StorageFailedError',
    'setMeta StorageFailedError',
    'closed',
  ])
  const reopened = new SqliteRaftStorage(path)
  const state = reopened.load()
  reopened.close()
  const lastAcked = acks[acks.length - 1]
  expect(state.entries.map(entry => entry.index)).toEqual(Array.from({ length: lastAcked }, (_, i) => i + 1))
  expect(state.hardState).toEqual({ term: 1, vote: 'a', commit: lastAcked - 64 })
})

function isDeepEqual(a: unknown, b: unknown): boolean {
  try {
    expect(a).toEqual(b)
    return true
  } catch {
    return false
  }
}
