/**
 * Who may do what, by SPIFFE ID. A policy is a list of rules; each names SPIFFE IDs by pattern and the
 * actions it allows them. Patterns are exact IDs (`spiffe://example.org/agent/a`) or prefix wildcards
 * (`spiffe://example.org/agents/*` matches every ID below `/agents/`, at any depth;
 * `spiffe://example.org/*` every ID of the trust domain). An action is allowed when any rule allows it:
 * there are no deny rules, so the order of rules does not matter.
 */

import { InvalidArgumentError } from '../errors.ts'
import { parseSpiffeId } from './spiffe-id.ts'

/**
 * - `join`: be a member: join the cluster, replicate the log as a non-voter, keep a session, register.
 * - `vote`: be a Raft voter: be promoted, campaign, vote, lead (and run the leader's housekeeping).
 * - `submitTask`: submit and cancel tasks.
 * - `runTask`: claim, complete, fail and steal tasks.
 * - `lock`: take, extend and release locks; campaign in named elections.
 * - `write`: put and delete keys of the consensus KV store.
 * - `read`: read the consensus KV store through the API: `get`, `getEntry`, `list`, `watch` on the agent
 *   itself, and a client's `kv get`, `kv watch`, `task status` and `snapshot save`. (A member still replicates
 *   the log it takes part in: `read` governs the API, not the bytes Raft hands a member.)
 */
export type Action = 'join' | 'vote' | 'submitTask' | 'runTask' | 'lock' | 'write' | 'read'

export const ACTIONS: readonly Action[] = ['join', 'vote', 'submitTask', 'runTask', 'lock', 'write', 'read']

export interface PolicyRule {
  /** SPIFFE ID patterns: exact IDs or `spiffe://<trust-domain>/<path>/*` prefixes. */
  ids: string[]
  /** What the IDs may do; `'*'` for every action. */
  allow: Action[] | '*'
}

/** Decides `authorize(spiffeId, action)` from rules. An ID no rule matches may do nothing. */
export class AuthorizationPolicy {
  private readonly exact = new Map<string, Set<Action>>()
  private readonly prefixes: { prefix: string; actions: Set<Action> }[] = []

  /** Throws `InvalidArgumentError` for a pattern that is not a SPIFFE ID or prefix, or an unknown action. */
  constructor(rules: readonly PolicyRule[]) {
    if (!Array.isArray(rules)) throw new InvalidArgumentError('policy rules must be an array')
    for (const rule of rules) {
      if (rule === null || typeof rule !== 'object' || !Array.isArray(rule.ids)) {
        throw new InvalidArgumentError('a policy rule needs ids (an array of SPIFFE ID patterns) and allow')
      }
      const actions = parseActions(rule.allow)
      for (const pattern of rule.ids) {
        if (typeof pattern === 'string' && pattern.endsWith('/*')) {
          const base = pattern.slice(0, -2)
          checkPattern(base, pattern)
          this.prefixes.push({ prefix: `${base}/`, actions })
        } else {
          checkPattern(pattern, pattern)
          const existing = this.exact.get(pattern) ?? new Set()
          for (const action of actions) existing.add(action)
          this.exact.set(pattern, existing)
        }
      }
    }
  }

  /** A policy that allows every action to every authenticated peer: what security without a policy means. */
  static allowAll(): AuthorizationPolicy {
    return new AllowAll([])
  }

  /** Whether `spiffeId` may do `action`. */
  authorize(spiffeId: string, action: Action): boolean {
    if (this.exact.get(spiffeId)?.has(action) === true) return true
    for (const { prefix, actions } of this.prefixes) {
      if (spiffeId.startsWith(prefix) && actions.has(action)) return true
    }
    return false
  }

  /** Every action `spiffeId` may do. */
  allowed(spiffeId: string): Action[] {
    return ACTIONS.filter(action => this.authorize(spiffeId, action))
  }
}

class AllowAll extends AuthorizationPolicy {
  override authorize(): boolean {
    return true
  }
}

function parseActions(allow: unknown): Set<Action> {
  if (allow === '*') return new Set(ACTIONS)
  if (!Array.isArray(allow)) throw new InvalidArgumentError('a policy rule allows "*" or a list of actions')
  for (const action of allow) {
    if (!ACTIONS.includes(action as Action)) {
      throw new InvalidArgumentError(`unknown action ${JSON.stringify(action)}; one of ${ACTIONS.join(', ')}`)
    }
  }
  return new Set(allow as Action[])
}

function checkPattern(id: unknown, pattern: unknown): void {
  try {
    parseSpiffeId(id as string)
  } catch (cause) {
    throw new InvalidArgumentError(
      `policy pattern ${JSON.stringify(pattern)} is not a SPIFFE ID or a spiffe://<trust-domain>/<path>/* prefix`,
      { cause },
    )
  }
}
