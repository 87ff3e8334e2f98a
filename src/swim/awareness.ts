/**
 * Lifeguard's local health: a score that rises when this node shows signs of being the slow one (its probes
 * fail without the nacks that would prove its peers can hear it, it has to refute suspicion of itself, it
 * was stalled) and falls with every successful probe. Probe timeouts scale by score + 1, so a struggling node
 * waits longer before it accuses others.
 */
export class Awareness {
  private readonly max: number
  private current = 0

  /** The score stays within 0..max-1. */
  constructor(max: number) {
    this.max = max
  }

  get score(): number {
    return this.current
  }

  /** Adds `delta` (may be negative), clamped to the range. */
  apply(delta: number): void {
    this.current = Math.min(this.max - 1, Math.max(0, this.current + delta))
  }

  /** `timeout` stretched by the current score. */
  scale(timeout: number): number {
    return timeout * (this.current + 1)
  }
}
