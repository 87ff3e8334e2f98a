/**
 * Membership: the encoding of config entries, the single-server change rule, and the history of
 * configurations along the log (a configuration takes effect as soon as its entry is in the log, so
 * truncating the log can bring an older one back).
 */

import { ConfigChangeError } from './errors.ts'
import type { Config, ConfigChange, NodeId } from './types.ts'

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** The empty configuration of a node that has not been told about any cluster yet. */
export function emptyConfig(): Config {
  return { voters: [], nonVoters: [] }
}

/** A deep copy, so callers cannot alter the core's configuration. */
export function copyConfig(config: Config): Config {
  return { voters: [...config.voters], nonVoters: [...config.nonVoters] }
}

/** Encodes a configuration as the data of a `config` entry (UTF-8 JSON). */
export function encodeConfig(config: Config): Uint8Array {
  return encoder.encode(JSON.stringify({ voters: config.voters, nonVoters: config.nonVoters }))
}

function isIdList(value: unknown): value is NodeId[] {
  return Array.isArray(value) && value.every(id => typeof id === 'string' && id !== '')
}

/** Decodes the data of a `config` entry; throws `ConfigChangeError` on anything that is not a valid config. */
export function decodeConfig(data: Uint8Array): Config {
  let parsed: unknown
  try {
    parsed = JSON.parse(decoder.decode(data))
  } catch {
    throw new ConfigChangeError('Config entry is not valid JSON')
  }
  if (typeof parsed !== 'object' || parsed === null)
    throw new ConfigChangeError('Config entry is not an object')
  const { voters, nonVoters } = parsed as { voters?: unknown; nonVoters?: unknown }
  if (!isIdList(voters) || !isIdList(nonVoters))
    throw new ConfigChangeError('Config entry has malformed lists')
  const config: Config = { voters: [...voters], nonVoters: [...nonVoters] }
  validateConfig(config)
  return config
}

/** Every id appears once across both lists. */
export function validateConfig(config: Config): void {
  const seen = new Set<NodeId>()
  for (const id of [...config.voters, ...config.nonVoters]) {
    if (seen.has(id)) throw new ConfigChangeError(`Node ${id} appears twice in the configuration`)
    seen.add(id)
  }
}

/**
 * The configuration that results from one single-server change, or a `ConfigChangeError` when the change
 * does not apply to `config` or would leave no voter.
 */
export function applyConfigChange(config: Config, change: ConfigChange): Config {
  const { node } = change
  if (typeof node !== 'string' || node === '') throw new ConfigChangeError('Config change needs a node id')
  const isVoter = config.voters.includes(node)
  const isNonVoter = config.nonVoters.includes(node)
  const without = (list: NodeId[]) => list.filter(id => id !== node)
  switch (change.type) {
    case 'addVoter':
      if (isVoter) throw new ConfigChangeError(`${node} is already a voter`)
      if (isNonVoter) throw new ConfigChangeError(`${node} is a non-voter: promote it instead`)
      return { voters: [...config.voters, node], nonVoters: [...config.nonVoters] }
    case 'removeVoter':
      if (!isVoter) throw new ConfigChangeError(`${node} is not a voter`)
      if (config.voters.length === 1)
        throw new ConfigChangeError('Removing the last voter would leave no quorum')
      return { voters: without(config.voters), nonVoters: [...config.nonVoters] }
    case 'addNonVoter':
      if (isVoter || isNonVoter) throw new ConfigChangeError(`${node} is already a member`)
      return { voters: [...config.voters], nonVoters: [...config.nonVoters, node] }
    case 'removeNonVoter':
      if (!isNonVoter) throw new ConfigChangeError(`${node} is not a non-voter`)
      return { voters: [...config.voters], nonVoters: without(config.nonVoters) }
    case 'promote':
      if (!isNonVoter) throw new ConfigChangeError(`${node} is not a non-voter`)
      return { voters: [...config.voters, node], nonVoters: without(config.nonVoters) }
    default:
      throw new ConfigChangeError(`Unknown config change ${(change as { type: unknown }).type}`)
  }
}

interface ConfigAt {
  index: number
  config: Config
}

/**
 * The configurations along the log: a base (the snapshot's, or the empty config at index 0) and one item per
 * config entry after it. The current configuration is the last item.
 */
export class ConfigHistory {
  private items: ConfigAt[]

  constructor(baseIndex: number, baseConfig: Config) {
    this.items = [{ index: baseIndex, config: baseConfig }]
  }

  /** The configuration in force now (that of the last config entry in the log). */
  current(): Config {
    return this.items[this.items.length - 1].config
  }

  /** Index of the entry (or snapshot) that set the current configuration. */
  currentIndex(): number {
    return this.items[this.items.length - 1].index
  }

  /** The configuration in force at `index` (that of the last config entry at or before it). */
  at(index: number): Config {
    for (let i = this.items.length - 1; i > 0; i--) {
      if (this.items[i].index <= index) return this.items[i].config
    }
    return this.items[0].config
  }

  /** Records the config entry at `index` (appended after every recorded one). */
  add(index: number, config: Config): void {
    this.items.push({ index, config })
  }

  /** Forgets the config entries at `index` and later; returns whether the current configuration changed. */
  truncateFrom(index: number): boolean {
    let end = this.items.length
    while (end > 1 && this.items[end - 1].index >= index) end--
    if (end === this.items.length) return false
    this.items.length = end
    return true
  }

  /** The log up to `index` became a snapshot: the configuration at `index` becomes the base. */
  compact(index: number): void {
    const config = this.at(index)
    this.items = [{ index, config }, ...this.items.filter(item => item.index > index)]
  }

  /** Replaces the base with a snapshot's; keeps entries after it when `keepSuffix`. */
  restore(index: number, config: Config, keepSuffix: boolean): void {
    const suffix = keepSuffix ? this.items.filter(item => item.index > index) : []
    this.items = [{ index, config }, ...suffix]
  }
}
