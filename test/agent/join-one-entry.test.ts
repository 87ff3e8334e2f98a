/**
 * A member's join in one Raft entry (issue 16): the session keeper opens its session with the agent's
 * registration in the same command (`openSessionAndRegister`) when the registration hook gives one (the
 * cluster version admits it), and opens alone, registering after, when it does not or the leader refuses
 * the command as above the cluster version.
 */
import { describe, expect, it } from 'vitest'
import { SessionKeeper } from '../../src/agent/node/session.ts'
import { resolveTiming } from '../../src/agent/options.ts'
import { InvalidArgumentError, UnsupportedVersionError } from '../../src/errors.ts'
import type { Command, CommandResult, OpenSessionAndRegisterCommand } from '../../src/state/index.ts'
import { VirtualScheduler } from '../../src/time/index.ts'

const log = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

function keeper(answer: (command: Command) => CommandResult | Error) {
  const submitted: Command[] = []
  const afterOpen: (OpenSessionAndRegisterCommand | undefined)[] = []
  const session = new SessionKeeper(
    'a',
    resolveTiming({ sessionTtlMs: 10_000 }),
    {
      submitRaw: async command => {
        submitted.push(command)
        const result = answer(command)
        if (result instanceof Error) throw result
        return result
      },
      keepAlive: async () => ({ status: 'renewed' }),
    },
    log as never,
    new VirtualScheduler({ start: 1_000 }),
  )
  session.afterOpen = async (_sessionId, registered) => {
    afterOpen.push(registered)
  }
  return { session, submitted, afterOpen }
}

const opened = (command: Command): CommandResult =>
  'sessionId' in command && command.sessionId !== undefined
    ? { type: 'session', sessionId: command.sessionId, expiresAt: 0 }
    : { type: 'ok' }

function registration(open: {
  sessionId: string
  agentId: string
  ttlMs: number
}): OpenSessionAndRegisterCommand {
  return {
    type: 'openSessionAndRegister',
    sessionId: open.sessionId,
    agentId: open.agentId,
    ttlMs: open.ttlMs,
    name: 'a',
    addrs: [],
    capabilities: [],
    labels: {},
    concurrency: 1,
  }
}

describe('a join in one Raft entry', () => {
  it('opens the session with the registration in one command when the cluster version admits it', async () => {
    const { session, submitted, afterOpen } = keeper(opened)
    session.registration = registration
    await session.open(60_000)
    expect(submitted.map(command => command.type)).toEqual(['openSessionAndRegister'])
    expect(afterOpen).toEqual([submitted[0]])
    expect(session.id).toBe((submitted[0] as OpenSessionAndRegisterCommand).sessionId)
  })

  it('opens alone (the registration follows in afterOpen) while the cluster version does not', async () => {
    const { session, submitted, afterOpen } = keeper(opened)
    await session.open(60_000)
    expect(submitted.map(command => command.type)).toEqual(['openSession'])
    expect(afterOpen).toEqual([undefined])
  })

  it('opens alone when the leader refuses the command as above the cluster version', async () => {
    const { session, submitted, afterOpen } = keeper(command =>
      command.type === 'openSessionAndRegister'
        ? new UnsupportedVersionError('cluster runs version 3')
        : opened(command),
    )
    session.registration = registration
    await session.open(60_000)
    expect(submitted.map(command => command.type)).toEqual(['openSessionAndRegister', 'openSession'])
    expect(afterOpen).toEqual([undefined])
  })

  it('a refused registration (name taken) is an InvalidArgumentError, and no session is kept', async () => {
    const { session, afterOpen } = keeper(() => ({
      type: 'error',
      code: 'NameTaken',
      message: 'name a is held by agent b',
    }))
    session.registration = registration
    await expect(session.open(60_000)).rejects.toThrow(InvalidArgumentError)
    expect(session.id).toBe('')
    expect(afterOpen).toEqual([])
  })
})
