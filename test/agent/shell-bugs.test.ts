import { describe, expect, it } from 'vitest'
import { shellBugsOf, withShellBugs } from '../../src/agent/internal-options.ts'
import { NO_SHELL_BUGS, SHELL_BUG_NAMES } from '../../src/shell-bugs.ts'

describe('shell bug switches (test-only)', () => {
  it('are off unless set, reach the agent through one symbol option, and refuse an unknown name', () => {
    expect(shellBugsOf({})).toBe(NO_SHELL_BUGS)
    const options = withShellBugs({ name: 'x' }, ['no-fail-stop', 'lease-inline-expiry'])
    expect([...shellBugsOf(options)].sort()).toEqual(['lease-inline-expiry', 'no-fail-stop'])
    // Symbol-keyed: invisible to JSON and to the option names `createAgent` checks.
    expect(Object.keys(options)).toEqual(['name'])
    expect(() => withShellBugs({}, ['lease-inline-expiry', 'no-such-bug'])).toThrow(RangeError)
    expect(SHELL_BUG_NAMES).toEqual([
      'lease-inline-expiry',
      'no-fail-stop',
      'resign-any-candidacy',
      'session-window',
      'ephemeral-outlives-session',
      'txn-first-compare-only',
      'semaphore-extra-permit',
      'cancel-keeps-attempt',
    ])
  })
})
