/** Keys of the KV store: their limits, their order, and an index that keeps them in that order. */

/** Longest key or prefix, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 1024

/** A key: a non-empty string of at most `MAX_KEY_LENGTH` code units. */
export function isKey(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_KEY_LENGTH
}

/**
 * Byte order of the keys' UTF-8 encodings (etcd's order), without encoding them: UTF-8 orders by code
 * point, and UTF-16 code units order differently only where a surrogate (U+D800..U+DFFF, half of a code
 * point above U+FFFF) meets a unit in U+E000..U+FFFF. Shifting those two ranges past each other fixes that.
 */
export function compareKeys(a: string, b: string): number {
  const length = Math.min(a.length, b.length)
  for (let i = 0; i < length; i++) {
    let x = a.charCodeAt(i)
    let y = b.charCodeAt(i)
    if (x === y) continue
    if (x >= 0xd800) x += x >= 0xe000 ? -0x800 : 0x2000
    if (y >= 0xd800) y += y >= 0xe000 ? -0x800 : 0x2000
    return x - y
  }
  return a.length - b.length
}

/**
 * The keys of a map, in byte order, for range reads. Insertions are buffered and put in place on the next
 * read (by binary search when few, by one merge pass when many), and deletions are left as holes skipped
 * on reads (the map says which keys live) and squeezed out once they are half the array: a write stays
 * O(1), a read after k new keys costs at most O(n + k log k).
 */
export class SortedKeys {
  private sorted: string[] = []
  private readonly added = new Set<string>()
  private holes = 0
  private readonly live: (key: string) => boolean

  /** `live(key)` tells whether a key is (still) in the map. */
  constructor(live: (key: string) => boolean) {
    this.live = live
  }

  /** A key that was not in the map was put. */
  add(key: string): void {
    this.added.add(key)
  }

  /** A key left the map. */
  remove(key: string): void {
    if (this.added.delete(key)) return
    this.holes++
  }

  /**
   * Live keys starting with `prefix`, greater than `after` if given, in byte order; `visit` returns false to
   * stop.
   */
  scan(prefix: string, after: string | undefined, visit: (key: string) => boolean): void {
    this.settle()
    const keys = this.sorted
    const start = after !== undefined && compareKeys(after, prefix) >= 0 ? after : prefix
    let i = lowerBound(keys, start)
    for (; i < keys.length; i++) {
      const key = keys[i]
      if (!key.startsWith(prefix)) return
      if (key === after || !this.live(key)) continue
      if (!visit(key)) return
    }
  }

  private settle(): void {
    if (this.added.size > 0) this.insertAdded()
    // After the insertions, which may fill holes (a key deleted and put again).
    if (this.holes > 0 && this.holes * 2 >= this.sorted.length) {
      this.sorted = this.sorted.filter(this.live)
      this.holes = 0
    }
  }

  private insertAdded(): void {
    const added = [...this.added].sort(compareKeys)
    this.added.clear()
    // A few new keys go in by binary search (a memmove each); many are merged in one pass.
    if (added.length * 64 <= this.sorted.length) {
      for (const key of added) {
        const at = lowerBound(this.sorted, key)
        // A key deleted and put again is both a hole and an addition: keep one copy.
        if (this.sorted[at] === key) this.holes--
        else this.sorted.splice(at, 0, key)
      }
      return
    }
    const merged: string[] = new Array(this.sorted.length + added.length)
    let i = 0
    let j = 0
    let k = 0
    while (i < this.sorted.length && j < added.length) {
      const order = compareKeys(this.sorted[i], added[j])
      if (order === 0) {
        merged[k++] = added[j++]
        i++
        this.holes--
      } else merged[k++] = order < 0 ? this.sorted[i++] : added[j++]
    }
    while (i < this.sorted.length) merged[k++] = this.sorted[i++]
    while (j < added.length) merged[k++] = added[j++]
    merged.length = k
    this.sorted = merged
  }
}

/** First position whose key is >= `key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let low = 0
  let high = keys.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (compareKeys(keys[middle], key) < 0) low = middle + 1
    else high = middle
  }
  return low
}
