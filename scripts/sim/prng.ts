/**
 * The simulators' only source of randomness (Raft's and SWIM's): sfc32 (Chris Doty-Humphrey's Small Fast Counting generator),
 * seeded through splitmix32. One root seed yields independent streams by label, so adding a draw in one
 * concern (say, the network) does not shift the draws of another (the clients) and a seed stays comparable
 * across small changes of the simulator.
 */

/** FNV-1a over the label's UTF-16 code units: a stable 32-bit hash for stream names. */
function hashLabel(label: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < label.length; i++) {
    hash ^= label.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}

/** splitmix32: turns structured seeds (0, 1, 2, ...) into well-mixed state words. */
function splitmix32(state: number): [next: number, output: number] {
  const next = (state + 0x9e3779b9) | 0
  let z = next
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  z ^= z >>> 16
  return [next, z >>> 0]
}

export class Prng {
  private a: number
  private b: number
  private c: number
  private d: number
  private readonly seedWords: readonly [number, number]
  private readonly label: string

  /** `seed` is any safe integer; `label` names the stream (different labels give unrelated sequences). */
  constructor(seed: number, label = 'root') {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer: ${seed}`)
    const low = seed >>> 0
    const high = Math.floor(seed / 0x1_0000_0000) >>> 0
    this.seedWords = [low, high]
    this.label = label
    let state = (low ^ Math.imul(high, 0x27d4eb2d) ^ hashLabel(label)) | 0
    const words: number[] = []
    for (let i = 0; i < 4; i++) {
      const [next, output] = splitmix32(state)
      state = next
      words.push(output)
    }
    ;[this.a, this.b, this.c, this.d] = words as [number, number, number, number]
    // Warm up: sfc32's first outputs are correlated with its seed words.
    for (let i = 0; i < 12; i++) this.nextUint32()
  }

  /**
   * An independent stream named `label` under this one's name, derived from the root seed (not from this
   * stream's position, so drawing here never shifts it).
   */
  stream(label: string): Prng {
    const [low, high] = this.seedWords
    return new Prng(high * 0x1_0000_0000 + low, `${this.label}/${label}`)
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 0x1_0000_0000
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  /** Uniform integer in [low, high], both included. */
  between(low: number, high: number): number {
    return low + this.int(high - low + 1)
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list')
    return items[this.int(items.length)]
  }

  /** A key of `weights` drawn with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const keys = Object.keys(weights) as K[]
    let total = 0
    for (const key of keys) total += weights[key]
    let roll = this.next() * total
    for (const key of keys) {
      roll -= weights[key]
      if (roll < 0) return key
    }
    return keys[keys.length - 1]
  }

  /** A uniformly shuffled copy (Fisher–Yates). */
  shuffled<T>(items: readonly T[]): T[] {
    const copy = [...items]
    for (let i = copy.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      ;[copy[i], copy[j]] = [copy[j], copy[i]]
    }
    return copy
  }

  /** `count` distinct items of `items` (all of them if fewer), in random order. */
  sample<T>(items: readonly T[], count: number): T[] {
    const copy = [...items]
    const n = Math.min(count, copy.length)
    for (let i = 0; i < n; i++) {
      const j = i + this.int(copy.length - i)
      ;[copy[i], copy[j]] = [copy[j], copy[i]]
    }
    return copy.slice(0, n)
  }

  /** The `Random` shape the Raft and SWIM cores take. */
  asRandom(): () => number {
    return () => this.next()
  }
}
