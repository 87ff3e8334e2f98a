import type { Logger } from '@libp2p/interface'
import { InvalidArgumentError, UnsupportedVersionError } from '../../errors.ts'
import { BASE_COMMAND_SET_VERSION, type Command, commandVersion } from '../../state/index.ts'
import type { Scheduler } from '../../time/index.ts'
import { deadlineSignal } from '../node/abort.ts'
import type { CommitPort, RunnerPort } from '../node/port.ts'
import type { Replica } from '../node/replica.ts'
import type { AdminCall } from './admin-protocol.ts'

/**
 * The leader's gate: throws `UnsupportedVersionError` for a command above the cluster version, which some
 * replica could not apply. Nothing was proposed.
 */
export function checkClusterVersion(command: Pick<Command, 'type'>, clusterVersion: number): void {
  const needed = commandVersion(command)
  if (needed <= clusterVersion) return
  throw new UnsupportedVersionError(
    `${command.type} needs command-set version ${needed}, and the cluster runs version ${clusterVersion}: ` +
      'some replica supports no more. Upgrade every agent; the leader raises the cluster version once all ' +
      'of them support it.',
  )
}

export interface ClusterVersionInit {
  selfId: string
  replica: Replica
  runner: RunnerPort
  /** Asks a replica for its command-set version (the admin protocol's `version`). */
  admin: AdminCall
  commit: CommitPort
  scheduler: Scheduler
  closed: AbortSignal
  log: Logger
}

/**
 * Between two attempts to raise the cluster version (a replica did not answer, or supports less): doubling
 * from the first to the last, as each attempt asks every replica.
 */
const FIRST_RETRY_MS = 1_000
const LAST_RETRY_MS = 5_000
/** How long a replica has to answer. */
const ASK_TIMEOUT_MS = 2_000

/**
 * Raises the cluster version, on the leader: once every replica of the configuration says it supports a
 * higher command-set version than the cluster runs, it commits `setClusterVersion` with the lowest of
 * theirs (its own included). A replica that does not answer holds the version where it is; one that
 * predates the `version` request supports the base version. The version never goes down.
 */
export class ClusterVersionKeeper {
  private readonly init: ClusterVersionInit
  private raising = false
  private lastAttempt = Number.NEGATIVE_INFINITY
  private retryMs = FIRST_RETRY_MS

  constructor(init: ClusterVersionInit) {
    this.init = init
  }

  /** The founder, the only replica: its own version, committed before `join` returns. */
  async commitFounding(deadline: number, signal?: AbortSignal): Promise<void> {
    const state = this.init.replica.state
    if (state.commandSetVersion <= state.clusterVersion) return
    await this.propose(state.commandSetVersion, deadline, signal)
  }

  /** A leader's round (housekeeping): tries to raise the version now and then while it can go up. */
  keep(): void {
    const state = this.init.replica.state
    if (this.raising || state.commandSetVersion <= state.clusterVersion) return
    const now = this.init.scheduler.now()
    if (now - this.lastAttempt < this.retryMs) return
    this.lastAttempt = now
    this.retryMs = Math.min(LAST_RETRY_MS, this.retryMs * 2)
    this.raising = true
    this.raise()
      .catch(err => this.init.log('cluster version not raised yet: %e', err))
      .finally(() => {
        this.raising = false
      })
  }

  private async raise(): Promise<void> {
    const { selfId, runner, replica } = this.init
    const config = runner.current()?.status().config
    if (config === undefined) return
    const members = [...config.voters, ...config.nonVoters]
    const others = members.filter(id => id !== selfId)
    const versions = await Promise.all(others.map(id => this.versionOf(id)))
    let target = replica.state.commandSetVersion
    for (let i = 0; i < others.length; i++) {
      const version = versions[i]
      if (version === undefined) return
      if (version < target) target = version
    }
    if (target <= replica.state.clusterVersion) return
    // A replica added while we asked has not been asked: ask again next round.
    const now = runner.current()?.status().config
    if (now === undefined || [...now.voters, ...now.nonVoters].some(id => !members.includes(id))) return
    await this.propose(target, this.init.commit.deadline())
  }

  /** The replica's version; undefined if it did not answer (unreachable, or stopped on an entry). */
  private async versionOf(id: string): Promise<number | undefined> {
    const bound = deadlineSignal(ASK_TIMEOUT_MS, [this.init.closed], this.init.scheduler)
    try {
      const answer = await this.init.admin(id, { op: 'version' }, bound.signal)
      return typeof answer.version === 'number' ? answer.version : BASE_COMMAND_SET_VERSION
    } catch (err) {
      // An agent from before the `version` request refuses it as malformed.
      if (err instanceof InvalidArgumentError) return BASE_COMMAND_SET_VERSION
      return undefined
    } finally {
      bound.cancel()
    }
  }

  private async propose(version: number, deadline: number, signal?: AbortSignal): Promise<void> {
    const result = await this.init.commit.submitRaw({ type: 'setClusterVersion', version }, deadline, signal)
    if (result.type === 'error') {
      throw new InvalidArgumentError(`could not set the cluster version: ${result.message}`)
    }
    this.init.log('cluster version: %d', this.init.replica.state.clusterVersion)
  }
}
