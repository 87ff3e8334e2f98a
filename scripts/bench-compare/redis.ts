/**
 * A redis-server on a loopback port with its files in a temporary directory, for BullMQ. Persistence is
 * the append-only file with `appendfsync everysec`, BullMQ's usual production set-up (Redis's default
 * snapshots are off): a write is acknowledged before it is fsynced, and a crash can lose the last second.
 * `appendfsync always` (an fsync before each acknowledgement, as etcd and conclave do) is one flag away.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { closeSync, mkdirSync, openSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { freePorts } from './ports.ts'
import { reapOnExit } from './reaper.ts'

export type AppendFsync = 'everysec' | 'always'

/** The `redis-server --version` number, or undefined if Redis is not installed. */
export function redisVersion(): string | undefined {
  const run = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  if (run.error !== undefined || run.status !== 0) return undefined
  return /v=(\S+)/.exec(run.stdout)?.[1] ?? 'unknown'
}

export class RedisServer {
  readonly port: number
  private readonly process: ChildProcess
  private readonly exit: Promise<void>

  private constructor(port: number, child: ChildProcess) {
    this.port = port
    this.process = child
    this.exit = new Promise(resolve => child.once('exit', () => resolve()))
  }

  static async start(dir: string, appendfsync: AppendFsync): Promise<RedisServer> {
    mkdirSync(dir, { recursive: true })
    const [port] = await freePorts(1)
    const log = openSync(join(dir, 'redis.log'), 'a')
    const child = spawn(
      'redis-server',
      [
        ['--port', String(port)],
        ['--bind', '127.0.0.1'],
        ['--dir', dir],
        ['--appendonly', 'yes'],
        ['--appendfsync', appendfsync],
        ['--save', ''],
        ['--maxmemory-policy', 'noeviction'],
      ].flat(),
      { stdio: ['ignore', log, log] },
    )
    closeSync(log)
    reapOnExit(child)
    const server = new RedisServer(port, child)
    await server.waitReady()
    return server
  }

  async stop(): Promise<void> {
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 5000)
    this.process.kill('SIGTERM')
    await this.exit
    clearTimeout(timer)
  }

  /** PING answered with PONG, within `timeoutMs`. */
  private async waitReady(timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs
    while (!(await this.ping())) {
      if (Date.now() > end) throw new Error('redis-server did not answer PING in time')
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }

  private ping(): Promise<boolean> {
    return new Promise(resolve => {
      const socket = connect(this.port, '127.0.0.1')
      socket.setTimeout(1000)
      socket.once('connect', () => socket.write('PING\r\n'))
      socket.once('data', data => {
        socket.destroy()
        resolve(data.toString().startsWith('+PONG'))
      })
      socket.once('error', () => resolve(false))
      socket.once('timeout', () => {
        socket.destroy()
        resolve(false)
      })
    })
  }
}
