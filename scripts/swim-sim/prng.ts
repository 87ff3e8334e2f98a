/**
 * The SWIM simulator's randomness: sfc32 (Chris Doty-Humphrey's Small Fast Counting generator) seeded
 * through splitmix32. Named streams derive from the root seed and the name only, so the draws of one concern
 * (the network, one member's core) never shift those of another, and a seed replays exactly.
 */

/** FNV-1a over the name's UTF-16 units. */
function hashName(name: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}

function splitmix32(state: number): [next: number, output: number] {
  const next = (state + 0x9e3779b9) | 0
  let z = next
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  z ^= z >>> 16
  return [next, z >>> 0]
}

export class SimRandom {
  private a: number
  private b: number
  private c: number
  private d: number
  private readonly seed: number

  /** `seed`: a safe integer; `name` selects an independent stream. */
  constructor(seed: number, name = 'root') {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`)
    this.seed = seed
    let state = (seed >>> 0) ^ Math.imul(Math.floor(seed / 0x1_0000_0000) >>> 0, 0x27d4eb2d) ^ hashName(name)
    const words: number[] = []
    for (let i = 0; i < 4; i++) {
      const [next, output] = splitmix32(state)
      state = next
      words.push(output)
    }
    ;[this.a, this.b, this.c, this.d] = words as [number, number, number, number]
    // sfc32's first outputs correlate with its seed words.
    for (let i = 0; i < 12; i++) this.uint32()
  }

  /** An independent stream for `name`, derived from the root seed. */
  stream(name: string): SimRandom {
    return new SimRandom(this.seed, name)
  }

  uint32(): number {
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
    return this.uint32() / 0x1_0000_0000
  }

  /** Uniform integer in [low, high]. */
  between(low: number, high: number): number {
    return low + Math.floor(this.next() * (high - low + 1))
  }

  chance(p: number): boolean {
    return this.next() < p
  }

  /** `count` distinct items of `items`, in random order. */
  sample<T>(items: readonly T[], count: number): T[] {
    const copy = [...items]
    const n = Math.min(count, copy.length)
    for (let i = 0; i < n; i++) {
      const j = i + Math.floor(this.next() * (copy.length - i))
      ;[copy[i], copy[j]] = [copy[j], copy[i]]
    }
    return copy.slice(0, n)
  }

  /** The `() => number` the SWIM core takes. */
  asRandom(): () => number {
    return () => this.next()
  }
}
